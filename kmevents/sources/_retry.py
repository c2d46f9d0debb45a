"""How the Kubernetes and k8sm live clients fail: expected errors retried, unexpected ones surfaced.

Every live client loops: connect, read, and on an error wait a backoff and
connect again. Errors come in two kinds:

- **expected**: the network or the server is away for a while (connection
  refused or reset, a timeout, HTTP 429 or 5xx, etcd unavailable). Retried
  forever with backoff: a cluster being down is not a reason to stop following it.
- **unexpected**: anything else (HTTP 401/403/404: the token or the URL is wrong;
  an answer of a shape nobody foresaw; a bug). Retried with backoff too, but only
  ``max_unexpected`` times in a row without a record delivered in between; then
  the client raises :class:`kmevents.errors.SourceFailed` from the last error, out
  of ``run()``, and whoever runs it ends non-zero.

Each kind of error (its class and, for HTTP, its status) is logged once with the
error, at its first occurrence (``kmevents.sources`` logger); repeats are counted
(``counts``) and logged at debug level only. A record delivered resets the run of
unexpected failures.
"""

from __future__ import annotations

import logging
from collections import Counter

import httpx

from kmevents.errors import SourceFailed

log = logging.getLogger("kmevents.sources")

#: HTTP statuses worth retrying forever: the server is overloaded or away.
RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def error_kind(exc: BaseException) -> str:
    """``ClassName`` or, for an HTTP status error, ``HTTPStatusError 403``."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{type(exc).__name__} {exc.response.status_code}"
    return type(exc).__name__


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is the network or the server being away (see the module docstring)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRIABLE_STATUSES
    return isinstance(exc, (httpx.TransportError, OSError, TimeoutError))


class Failures:
    """The failures of one live client (``source`` names it in logs and in ``SourceFailed``)."""

    def __init__(self, source: str, *, max_unexpected: int = 3) -> None:
        self.source = source
        self.max_unexpected = max_unexpected
        self.in_a_row = 0
        """Unexpected failures since the last record delivered."""
        self.counts: Counter[str] = Counter()
        """Every failure so far, by kind."""

    def failed(self, exc: BaseException, *, expected: bool | None = None) -> None:
        """Account for ``exc``; raises :class:`SourceFailed` when unexpected ones keep coming."""
        kind = error_kind(exc)
        expected = is_expected(exc) if expected is None else expected
        self.counts[kind] += 1
        first = self.counts[kind] == 1
        if expected:
            (log.warning if first else log.debug)(
                "%s: %s (%s); reconnecting with backoff", self.source, kind, exc,
                extra={"source": self.source, "error": kind, "times": self.counts[kind]})
            return
        self.in_a_row += 1
        if self.in_a_row > self.max_unexpected:
            raise SourceFailed(
                f"{self.source}: {self.in_a_row} unexpected failures in a row, the last {kind}: {exc}",
                hint="read the first logged occurrence of each error; a 401/403 means the credentials "
                     "lack access, a 404 a wrong URL or resource") from exc
        (log.warning if first else log.debug)(
            "%s: unexpected %s: %s; retrying with backoff (%d of %d)", self.source, kind, exc,
            self.in_a_row, self.max_unexpected, exc_info=exc if first else None,
            extra={"source": self.source, "error": kind, "times": self.counts[kind]})

    def progress(self) -> None:
        """A record was delivered: the run of unexpected failures is over."""
        self.in_a_row = 0
