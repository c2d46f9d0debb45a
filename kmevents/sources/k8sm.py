"""k8sm's scheduler leadership key in etcd -> ``scheduler.leader_elected`` (pure parser).

k8sm's HA mode elects its scheduler through one etcd key whose value is the
leader's identity. Accepted values: the identity as plain text (k8sm's etcd
elector), or a JSON leader record ``{"holderIdentity", "acquireTime", ...}``
(Kubernetes' leader-election record). An event is made when the identity
changes (a renewal by the same leader is not an election).

Positions: the stream is the key's life (``<key>@<create_revision>``) and
``seq`` is etcd's per-key ``version - 1`` (1 at creation, +1 per write), so a
skipped version is a write the watch did not deliver: ``source.gap``. A
deleted key (the leader stepped down) makes no event (the catalogue has none)
and is counted in ``skipped``; the next creation opens a new stream.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from kmevents.sources._common import DEFAULT_SKEW_SECONDS, Clock, Event, Skipped, Stream, at_text

Obj = dict[str, Any]


def leader_identity(value: bytes) -> tuple[str, str | None]:
    """``(identity, acquire_time or None)`` of a leader key value."""
    text = value.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            rec = orjson.loads(text)
        except orjson.JSONDecodeError:
            rec = None
        if isinstance(rec, dict) and rec.get("holderIdentity"):
            return str(rec["holderIdentity"]), rec.get("acquireTime")
    return text, None


class LeaderParser:
    """Writes of the leader key in, ``scheduler.leader_elected`` out. No I/O."""

    def __init__(self, cluster: str, key: str, *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.cluster = cluster
        self.key = key
        self.now = now
        self.skew_threshold = skew_threshold
        self.stream: Stream | None = None
        self.identity: str | None = None
        self.previous: str | None = None
        self.skipped = Skipped()

    def feed(self, value: bytes | None, *, version: int, create_revision: int,
             deleted: bool = False) -> list[Event]:
        """One write (or deletion, ``value=None``/``deleted=True``) of the key."""
        if deleted or value is None:
            self.skipped.add("leader key deleted (no catalogue type)")
            if self.identity is not None:
                self.previous = self.identity
            self.identity = None
            return []
        sid = f"{self.key}@{create_revision}"
        if self.stream is None or self.stream.stream_id != sid:
            self.stream = Stream(self.cluster, "k8sm", sid, now=self.now, skew_threshold=self.skew_threshold)
        out = self.stream.record(max(version - 1, 0))
        ident, acquired = leader_identity(value)
        if not ident or ident == self.identity:
            return out
        if acquired:
            at, clock = at_text(acquired), "scheduler"
        else:
            at, clock = self.stream.adapter_time(), "adapter"
        prev = self.identity or self.previous
        out.append(self.stream.event("scheduler.leader_elected", {"identity": ident, "previous": prev},
                                     occurred_at=at, clock=clock, raw_type="LEADER_KEY_PUT"))
        self.identity = ident
        self.previous = prev
        return out
