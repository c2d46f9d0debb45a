"""Poison and hostile records the chaos suite writes raw to the events topic, past ingest.

Each :class:`Hostile` says what the worker must do with it: ``dead_letter`` (the
record cannot be folded, or is not this partition's to fold: it goes to the
dead-letter topic keyed ``partition:offset`` and the partition goes on) or
``folded`` (a well-formed event the reducer annotates instead of applying:
nothing goes to the dead letters). Every record's bytes are unique within a run
(a nonce), so the suite finds each one in the log by its bytes, however many
times a send was retried across a broker kill.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

#: orjson refuses JSON nested deeper than 1024 levels
NESTING = 5000
JUNK_BYTES = 1_000_000


@dataclass(frozen=True)
class Hostile:
    name: str
    #: the cluster whose partition the record is written to
    cluster: str
    key: bytes | None
    value: bytes
    #: "dead_letter" or "folded"
    expect: str


def _event(cluster: str, nonce: str, type_: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": type_, "schema_version": 1, "cluster": cluster, "event_id": f"chaos-{nonce}",
            "source": {"kind": "mesos.scheduler", "stream_id": "chaos", "seq": 1},
            "occurred_at": "2015-07-08T15:03:23.000000Z", "clock": "master", "raw_type": "CHAOS",
            "dedupe_key": f"chaos-{nonce}", "redacted": [], "actor": None, "correlation_id": None,
            "causation_id": None, "payload": payload, **extra}


def _offer(cluster: str, nonce: str, cpus: float) -> dict[str, Any]:
    return _event(cluster, nonce, "offer.offered", {"offer": {
        "id": f"o-{nonce}", "framework_id": "f-chaos", "agent_id": f"a-{nonce}", "hostname": "h",
        "resources": [{"name": "cpus", "role": "*", "scalar": cpus, "ranges": None}]}})


def catalogue(rng: random.Random, home: str, other: str, round_: int) -> list[Hostile]:
    """One of each hostile record for cluster ``home``'s partition (``other``: a cluster
    pinned to another partition). ``round_`` makes the bytes unique within a run."""
    n = f"{round_}-{rng.getrandbits(32):08x}"
    k = home.encode()
    dl, folded = "dead_letter", "folded"
    deep = (b"[" * NESTING) + n.encode().join([b'"', b'"']) + (b"]" * NESTING)
    return [
        Hostile("not_json", home, k, b"\x00\xffnot json " + n.encode(), dl),
        Hostile("json_array", home, k, orjson.dumps([1, 2, 3, n]), dl),
        Hostile("json_string", home, k, orjson.dumps(f"an event {n}"), dl),
        Hostile("json_number", home, k, str(round_ * 1_000_003 + rng.randrange(1000)).encode(), dl),
        Hostile("status_v1_not_an_object", home, k, orjson.dumps(
            _event(home, n, "task.status_updated", {"status": 5})), dl),
        # Accepted by the fold: the reducer annotates the impossible amount (issue 14 C2).
        Hostile("huge_scalar_1e306", home, k, orjson.dumps(_offer(home, n, 1e306)), folded),
        Hostile("other_clusters_event_on_this_partition", home, other.encode(),
                orjson.dumps(_offer(other, n, 1.0)), dl),
        Hostile("empty_value", home, k, b"", dl),
        Hostile("none_key_junk", home, None, b"no key, no json " + n.encode(), dl),
        # Its cluster cannot be told from the key, which is what every reader selects by.
        Hostile("none_key_event", home, None, orjson.dumps(_offer(home, n + "-nokey", 1.0)), dl),
        Hostile("junk_1mb", home, k, n.encode() + rng.randbytes(JUNK_BYTES - len(n)), dl),
        Hostile("deeply_nested", home, k, deep, dl),
    ]
