"""kmevents' own container image runs the processor against the real stack (issue 8).

Runs when ``KMEVENTS_KMEVENTS_IMAGE`` names a built image (scripts/ci_testcontainers.sh
builds it from the repo's Dockerfile); the container is started with testcontainers,
on host networking, so it talks to the test stack on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from kmevents.settings import Settings, child_env
from tests.integration.test_processors import ingest_sim, wait_caught_up

IMAGE = os.environ.get("KMEVENTS_KMEVENTS_IMAGE")

pytestmark = pytest.mark.skipif(not IMAGE, reason="set KMEVENTS_KMEVENTS_IMAGE to a built kmevents image")


def test_the_image_derives_the_log_into_etcd_and_verifies_clean(isolated: Settings) -> None:
    from kmevents.replay.verify import verify
    from testcontainers.core.container import DockerContainer

    asyncio.run(ingest_sim(isolated, isolated.cluster, 3000))
    env = child_env(isolated)
    c = (DockerContainer(IMAGE, env=env)
         .with_command(["process", "--engine", "plain", "--group", f"img-{uuid.uuid4().hex[:6]}",
                        "--metrics-port", "0"])
         .with_kwargs(network_mode="host", labels={"kmevents.test-stack": "image"}))
    c.start()
    try:
        asyncio.run(wait_caught_up(isolated, timeout=120))
    except AssertionError:
        logs = c.get_wrapped_container().logs(tail=40).decode(errors="replace")
        raise AssertionError(f"the container did not catch up; its log:\n{logs}") from None
    finally:
        c.stop()
    report = asyncio.run(verify(isolated, [isolated.cluster]))
    assert report.clean, [f.as_dict() for f in report.drift[:5]]
