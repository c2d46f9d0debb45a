"""k8sm's scheduler leadership key in etcd -> ``scheduler.leader_elected`` (pure parser).

k8sm's HA mode (``km scheduler --ha``, Kubernetes 1.0-1.2,
``contrib/mesos/pkg/election``) elects its scheduler through one etcd key,
``/mesos/k8sm/framework/<framework name>/leader`` (``DEFAULT_KEY``: the
framework name defaults to ``Kubernetes``), written through etcd's **v2** keys
API: a candidate creates it (``prevExist=false``) with a 30 s TTL and its
identity as the plain-text value (``<executor group, hex>_<uuid>`` in 1.0/1.1,
``<executor id>:<uuid>`` later); the leader renews it every 24 s by
compare-and-swap on its ``modifiedIndex`` (same value, fresh TTL); when the
leader dies the key expires and the next candidate creates it again.

Accepted values: the identity as plain text, or a JSON leader record
``{"holderIdentity", "acquireTime", ...}`` (Kubernetes' leader-election
record, for a leader key written through v3). An event is made when the
identity changes; a renewal by the same leader is not an election (skipped).

Two ways in, one per etcd API (each live client feeds one):

- ``feed_v2(answer)``: an answer of the v2 keys API about the key, as JSON:
  a GET (``action: get``), a watch event (``create``, ``set``, ``update``,
  ``compareAndSwap``; ``delete``, ``compareAndDelete``, ``expire``), the
  error answer of a GET of an absent key (``errorCode: 100``), or that of a
  watch that lost etcd's event window (``errorCode: 401``, skipped: the client
  re-reads the key and says so with ``resumed``);
- ``feed(value, version=, create_revision=)``: a v3 put or delete.

Positions: the stream is the key's life (``<key>@<create_revision>`` in v3,
``<key>@<createdIndex>`` in v2). In v3, ``seq`` is etcd's per-key ``version -
1``, so a skipped version is a write the watch did not deliver:
``source.gap``. v2 has no per-key version: ``seq`` counts the writes of the
life this parser saw; a re-read after the watch lost etcd's event window
(``resumed=True``) that finds the key written meanwhile reports a
``source.gap`` of at least one write (the exact number is unknowable). The
first read of a life (the client's start) opens its stream where it is,
without a gap. A deleted or expired key (the leader stepped down or died)
makes no event (the catalogue has none) and is counted in ``skipped``; the
next creation opens a new stream.

Clock: neither API gives the time of a write (v2's ``expiration`` is the etcd
member's clock plus the TTL, rounded), so elections are stamped by the
adapter, except a JSON record's ``acquireTime`` (the scheduler's clock).

Never raises for one record: a value or answer it cannot read is quarantined
with its position (``outcomes``); ``records_in`` = ``records_mapped`` +
skipped + quarantined.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from kmevents.sources._common import (
    DEFAULT_SKEW_SECONDS,
    Clock,
    Event,
    Outcomes,
    Skipped,
    Stream,
    at_text,
)

Obj = dict[str, Any]

#: k8sm's election key for the default framework name (``meta.DefaultElectionFormat``).
DEFAULT_KEY = "/mesos/k8sm/framework/Kubernetes/leader"
#: v2 actions that write a value / that remove the key.
V2_WRITES = frozenset({"get", "create", "set", "update", "compareAndSwap"})
V2_REMOVALS = {"delete": "leader key deleted (no catalogue type)",
               "compareAndDelete": "leader key deleted (no catalogue type)",
               "expire": "leader key expired: the leader stopped renewing it (no catalogue type)"}
#: etcd v2 ``errorCode`` of a key that does not exist.
V2_KEY_NOT_FOUND = 100
#: etcd v2 ``errorCode`` s of a watch that lost etcd's event window (401: the index is older
#: than the last 1000 events; 400: the watcher was cleared by a recovery): re-read the key.
V2_WINDOW_LOST = frozenset({400, 401})
MAPPING_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


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

    def __init__(self, cluster: str, key: str = DEFAULT_KEY, *, now: Clock = time.time,
                 skew_threshold: float = DEFAULT_SKEW_SECONDS) -> None:
        self.cluster = cluster
        self.key = key
        self.now = now
        self.skew_threshold = skew_threshold
        self.stream: Stream | None = None
        self.identity: str | None = None
        self.previous: str | None = None
        self.modified_index: int | None = None
        """v2: the ``modifiedIndex`` of the last write seen (None: none, or the key is gone)."""
        self.outcomes = Outcomes()
        self.records_in = 0
        self.records_mapped = 0

    @property
    def skipped(self) -> Skipped:
        """``outcomes.skipped`` (the name callers used before ``outcomes``)."""
        return self.outcomes.skipped

    # -- v3 ------------------------------------------------------------------------------

    def feed(self, value: bytes | None, *, version: int, create_revision: int,
             deleted: bool = False, read: bool = False) -> list[Event]:
        """One v3 write (or deletion, ``value=None``/``deleted=True``) of the key;
        ``read``: it comes from a range read, not the watch."""
        self.records_in += 1
        if deleted or value is None:
            self._gone(V2_REMOVALS["delete"])
            return []
        try:
            sid = f"{self.key}@{int(create_revision)}"
            pos = max(int(version) - 1, 0)
            out = self._open(sid, first=pos if read else 0).record(pos)
            return self._value(out, bytes(value))
        except MAPPING_ERRORS as exc:
            self._quarantine(value, f"leader key value: {type(exc).__name__}: {exc}")
            return []

    # -- v2 ------------------------------------------------------------------------------

    def feed_v2(self, answer: Any, *, resumed: bool = False) -> list[Event]:
        """One v2 keys API answer about the key (module docstring); ``resumed``: a GET
        made because the watch lost etcd's event window, so writes may have been missed."""
        self.records_in += 1
        try:
            return self._v2(answer, resumed)
        except MAPPING_ERRORS as exc:
            self._quarantine(answer, f"etcd v2 answer: {type(exc).__name__}: {exc}")
            return []

    def _v2(self, answer: Any, resumed: bool) -> list[Event]:
        if not isinstance(answer, dict):
            raise TypeError(f"not a JSON object: {type(answer).__name__}")
        if "errorCode" in answer:
            if answer["errorCode"] == V2_KEY_NOT_FOUND:
                self._gone("leader key absent (no leader)")
                return []
            if answer["errorCode"] in V2_WINDOW_LOST:
                self.skipped.add(f"etcd v2 watch lost its event window (errorCode {answer['errorCode']}): "
                                 "the key is re-read")
                return []
            raise ValueError(f"etcd error {answer['errorCode']}: {answer.get('message')}")
        action = answer["action"]
        if action in V2_REMOVALS:
            self._gone(V2_REMOVALS[action])
            return []
        if action not in V2_WRITES:
            raise ValueError(f"unknown v2 action {action!r}")
        node = answer["node"]
        if node.get("dir"):
            raise ValueError("the key is a directory, not a leader key (check --key)")
        created, modified = int(node["createdIndex"]), int(node["modifiedIndex"])
        value = node["value"]
        if not isinstance(value, str):
            raise TypeError(f"value is {type(value).__name__}, not a string")
        sid = f"{self.key}@{created}"
        known = self.stream is not None and self.stream.stream_id == sid
        if known and self.modified_index is not None and modified <= self.modified_index:
            self.skipped.add("leader key unchanged since last read")
            return []
        if known:
            st = self._open(sid, first=0)
            # a re-read that finds writes the watch did not deliver: at least one is lost
            out = st.record(st.seq + 2 if action == "get" and resumed else None)
        else:
            # a new life: its first write is position 0; one we find later on (the watch
            # missed the create, or a re-read after a lost window) lost at least one write
            missed = modified > created and (action != "get" or resumed)
            out = self._open(sid, first=0).record(1 if missed else 0)
        self.modified_index = modified
        return self._value(out, value.encode())

    # -- shared ----------------------------------------------------------------------------

    def _open(self, sid: str, *, first: int) -> Stream:
        """The stream of the key life ``sid``; a new one starts at position ``first``."""
        if self.stream is None or self.stream.stream_id != sid:
            self.stream = Stream(self.cluster, "k8sm", sid, now=self.now, skew_threshold=self.skew_threshold)
            self.stream.seq = first - 1
            self.modified_index = None
        return self.stream

    def _value(self, out: list[Event], value: bytes) -> list[Event]:
        assert self.stream is not None
        ident, acquired = leader_identity(value)
        if not ident:
            raise ValueError("empty leader identity")
        if ident == self.identity:
            self.skipped.add("leader key renewed by the same leader")
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
        self.records_mapped += 1
        return out

    def _gone(self, reason: str) -> None:
        self.skipped.add(reason)
        if self.identity is not None:
            self.previous = self.identity
        self.identity = None
        self.modified_index = None

    def _quarantine(self, raw: Any, reason: str) -> None:
        sid = self.stream.stream_id if self.stream is not None else f"{self.key}@?"
        seq = max(self.stream.seq, 0) if self.stream is not None else 0
        self.outcomes.quarantine(sid, seq, raw if raw is not None else b"", reason)
