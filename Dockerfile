# kmevents itself: the processors (`kmevents process`), the API (`kmevents api`),
# the monitor and every other command. Everything listens on 127.0.0.1; run it
# with host networking (compose.yaml does).
#
# BASE is a build argument so the image builds where no registry answers, on the
# locally imported Debian base that scripts/build_images.sh makes:
#   docker build --network host -t kmevents-local/kmevents:0.1.0 .                      # python:3.11 base
#   docker build --network host --build-arg BASE=kmevents-local/debian:bookworm \
#                -t kmevents-local/kmevents:0.1.0 .                                    # local Debian base
# On a bare Debian base Python 3.11 comes from apt (bookworm's python3 is 3.11).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
RUN if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
      && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -c 'import sys; assert sys.version_info >= (3, 11), sys.version'
WORKDIR /opt/kmevents
# Where PyPI is reached through a TLS-intercepting proxy, put the host's CA bundle
# at .build-ca.pem in the build context (it is git-ignored; optional) so pip can
# verify the proxy: scripts/ci_testcontainers.sh does this.
COPY pyproject.toml README.md .build-ca.pe[m] ./
COPY kmevents ./kmevents
COPY processors ./processors
COPY replay ./replay
RUN if [ -s .build-ca.pem ]; then export PIP_CERT=/opt/kmevents/.build-ca.pem; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/kmevents --help >/dev/null
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/var/lib/kmevents \
    KMEVENTS_LOG_FORMAT=json
RUN mkdir -p /var/lib/kmevents && chown 65534:65534 /var/lib/kmevents
USER 65534:65534
LABEL org.opencontainers.image.title="kmevents" \
      org.opencontainers.image.description="Event-sourced state store and audit service for Kubernetes-on-Mesos clusters"
ENTRYPOINT ["kmevents"]
CMD ["--help"]
