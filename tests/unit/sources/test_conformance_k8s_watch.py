"""Conformance of the Kubernetes watch parser with captures of real shapes, version by version
(``tests/corpus/real/k8s-watch/``; what each file reproduces and where that shape is documented:
``tests/corpus/real/README.md``).

Each file is read as ``kmevents import`` reads a capture (``KubernetesParser.feed_capture``: one
stream, positions = document order) and must give exactly the events listed: type, dedupe key
(the ids the catalogue keys it by), time, clock and actor, at their position. Every record is
accounted for: records in = records that gave events + skipped + quarantined, with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kmevents.sources.kubernetes import KubernetesParser
from tests.unit.sources._helpers import canonical, fixed_now, folded

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "real" / "k8s-watch"
NODE = {"kind": "node", "name": "10.132.0.12"}
SCHED = {"kind": "scheduler", "name": "default-scheduler"}


def adapter(n: int) -> str:
    """The n-th adapter time of a stream read at the tests' fixed "now"."""
    return f"2015-07-08T15:05:00.{n:06d}Z"


@dataclass
class Expect:
    records: int
    events: list[tuple[int, str, str, str, str, dict[str, str] | None]]
    """(seq, type, dedupe key, occurred_at, clock, actor)."""
    skipped: dict[str, int] = field(default_factory=dict)
    quarantined: list[tuple[int, str]] = field(default_factory=list)
    """(seq, start of the reason)."""


P1, P2 = "5c0d4f1e-40e6-11e5-9b1a-42010af00011", "6a1f3e22-40e6-11e5-9b1a-42010af00012"
TASK1, TASK2 = "pod.5c2b8a31-40e6-11e5-b7a0-42010af00011", "pod.6a3c0d18-40e6-11e5-b7a0-42010af00012"
REDIS, RC = "8e77c0a4-8f0a-11e5-a1c4-42010af0001d", "8e6f1b2d-8f0a-11e5-a1c4-42010af0001d"
WORKER, REPORT = "3b1e6f0a-7c2d-4e8f-9a1b-5c6d7e8f9a01", "4c3b2a19-0f8e-4d7c-b6a5-9e8d7c6b5a41"
CACHE1, CACHE2 = "d0a1b2c3-e8b4-11e5-8d2c-42010af00031", "d0a4c5e6-e8b4-11e5-8d2c-42010af00031"


def upserts(kind: str, key: str, raws: int, *, deleted: bool = False) -> list:
    out = [(i, f"{kind}.upserted", f"{kind}.upserted|{key}|{adapter(i)}", adapter(i), "adapter", None)
           for i in range(raws)]
    if deleted:
        out.append((raws, f"{kind}.deleted", f"{kind}.deleted|{key}|{adapter(raws)}", adapter(raws), "adapter", None))
    return out


EXPECTED: dict[str, Expect] = {
    "v1.0-pods-watch.ndjson": Expect(7, [
        (0, "pod.upserted", f"pod.upserted|{P1}|2351", adapter(0), "adapter", None),
        (1, "pod.upserted", f"pod.upserted|{P1}|2354", adapter(1), "adapter", None),
        (1, "pod.scheduled", f"pod.scheduled|{P1}|{TASK1}", adapter(1), "adapter", None),
        (2, "pod.upserted", f"pod.upserted|{P1}|2360", adapter(2), "adapter", None),
        (3, "pod.upserted", f"pod.upserted|{P1}|2371", adapter(3), "adapter", None),
        (4, "pod.deleted", f"pod.deleted|{P1}", adapter(4), "adapter", None),
    ], {"ERROR without a code (the watch ended)": 1}, [(6, "undecodable JSON document: Unterminated string")]),
    "v1.0-pods-list.json": Expect(2, [
        (0, "pod.upserted", f"pod.upserted|{P1}|2360", adapter(0), "adapter", None),
        (0, "pod.scheduled", f"pod.scheduled|{P1}|{TASK1}", adapter(0), "adapter", None),
        (0, "pod.upserted", f"pod.upserted|{P2}|2390", adapter(1), "adapter", None),
        (0, "pod.scheduled", f"pod.scheduled|{P2}|{TASK2}", adapter(1), "adapter", None),
    ]),
    "v1.1-events-watch.ndjson": Expect(7, [
        (0, "k8s_event.recorded", f"k8s_event.recorded|default|{RC}|successfulCreate|1", "2015-11-16T14:02:09.000000Z",
         "apiserver", {"kind": "controller", "name": "replication-controller"}),
        (1, "k8s_event.recorded", f"k8s_event.recorded|default|{REDIS}|scheduled|1", "2015-11-16T14:02:10.000000Z",
         "scheduler", {"kind": "scheduler", "name": "scheduler"}),
        (2, "k8s_event.recorded", f"k8s_event.recorded|default|{REDIS}|pulled|1", "2015-11-16T14:02:12.000000Z",
         "agent", NODE),
        (3, "k8s_event.recorded", f"k8s_event.recorded|default|{REDIS}|backOff|1", "2015-11-16T14:02:20.000000Z",
         "agent", NODE),
        (4, "k8s_event.recorded", f"k8s_event.recorded|default|{REDIS}|backOff|7", "2015-11-16T14:06:41.000000Z",
         "agent", NODE),
        (5, "k8s_event.recorded", "k8s_event.recorded|default|10.132.0.13|NodeNotReady|1", "2015-11-16T14:09:03.000000Z",
         "apiserver", {"kind": "controller", "name": "controllermanager"}),
    ], {"events DELETED (the Event expired)": 1}),
    "v1.2-rcs-watch.ndjson": Expect(4, upserts("replication_controller", "shop/guestbook", 3, deleted=True)),
    "v1.2-services-watch.ndjson": Expect(2, upserts("service", "shop/guestbook", 1, deleted=True)),
    "v1.2-endpoints-watch.ndjson": Expect(4, [
        (i, "endpoints.observed", f"endpoints.observed|shop/guestbook|{adapter(i)}", adapter(i), "adapter", None)
        for i in range(4)]),
    "v1.2-nodes-watch.ndjson": Expect(3, upserts("node", "10.132.0.12", 2, deleted=True)),
    "v1.2-namespaces-watch.ndjson": Expect(3, upserts("namespace", "shop", 2, deleted=True)),
    "v1.2-kubectl-get-pods-w.json": Expect(4, [
        (0, "pod.upserted", f"pod.upserted|{CACHE1}|8101", adapter(0), "adapter", None),
        (0, "pod.upserted", f"pod.upserted|{CACHE2}|8104", adapter(1), "adapter", None),
        (1, "pod.upserted", f"pod.upserted|{CACHE2}|8112", adapter(2), "adapter", None),
        (2, "pod.upserted", f"pod.upserted|{CACHE1}|8120", adapter(3), "adapter", None),
    ]),
    "v1.2-manifests.json": Expect(3, [], {
        "no metadata.resourceVersion (a manifest, not an object the API server stored)": 2,
        "kind 'Secret' (not kept)": 1}),
    "v1.18-pods-watch-bookmarks.ndjson": Expect(5, [
        (0, "pod.upserted", f"pod.upserted|{WORKER}|550912", adapter(0), "adapter", None),
        (2, "pod.upserted", f"pod.upserted|{WORKER}|551230", adapter(1), "adapter", None),
        (2, "pod.evicted", f"pod.evicted|{WORKER}", adapter(1), "adapter", {"kind": "node", "name": "node-3"}),
    ], {"BOOKMARK (only the resourceVersion moves)": 2, "ERROR 410 Expired (the watch ended)": 1}),
    "v1.19-events.k8s.io-v1-watch.ndjson": Expect(4, [
        (0, "k8s_event.recorded", f"k8s_event.recorded|batch|{REPORT}|FailedScheduling|4",
         "2021-03-02T07:59:58.471902Z", "scheduler", SCHED),
        (1, "k8s_event.recorded", f"k8s_event.recorded|batch|{REPORT}|Scheduled|1",
         "2021-03-02T08:00:01.204318Z", "scheduler", SCHED),
        (2, "k8s_event.recorded", f"k8s_event.recorded|batch|{REPORT}|Pulled|1",
         "2021-03-02T08:00:03.000000Z", "agent", {"kind": "node", "name": "node-5"}),
        (3, "k8s_event.recorded", f"k8s_event.recorded|batch|{REPORT}|TaintManagerEviction|1",
         "2021-03-02T08:12:30.000000Z", "apiserver", {"kind": "controller", "name": "taint-controller"}),
        (3, "pod.evicted", f"pod.evicted|{REPORT}", "2021-03-02T08:12:30.000000Z", "apiserver",
         {"kind": "controller", "name": "taint-controller"}),
    ]),
}


def read(name: str) -> tuple[KubernetesParser, list[dict]]:
    p = KubernetesParser("prod-1", now=fixed_now)
    return p, canonical(p.feed_capture((CORPUS / name).read_bytes(), name))


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_gives_exactly_the_expected_events_and_accounts_for_every_record(name: str) -> None:
    want = EXPECTED[name]
    p, evs = read(name)
    got = [(e["source"]["seq"], e["type"], e["dedupe_key"], e["occurred_at"], e["clock"], e["actor"]) for e in evs]
    assert got == want.events
    assert {e["source"]["stream_id"] for e in evs} <= {name}
    assert p.skipped.counts == want.skipped
    q = p.outcomes.take_quarantined()
    assert [(x.seq, x.reason[:len(r)]) for x, r in zip(q, [r for _, r in want.quarantined], strict=True)] == \
        want.quarantined
    assert all(x.stream_id == name and x.raw for x in q)
    assert p.records_in == want.records
    assert p.records_in == p.records_mapped + sum(p.skipped.counts.values()) + p.outcomes.quarantined_total
    folded(evs)  # and the fold takes them


def test_an_item_without_a_namespace_is_the_same_pod_as_its_later_namespaced_self() -> None:
    _, evs = read("v1.2-kubectl-get-pods-w.json")
    cache2 = [e["payload"]["pod"] for e in evs if e["payload"]["pod"]["uid"] == CACHE2]
    assert [(x["namespace"], x["name"], x["ready"]) for x in cache2] == [
        ("default", "cache-z6q1r", False), ("default", "cache-z6q1r", True)]
    st = folded(evs)
    assert st.pods["default/cache-z6q1r"]["uid"] == CACHE2


def test_the_truncated_last_line_is_kept_byte_for_byte() -> None:
    raw = (CORPUS / "v1.0-pods-watch.ndjson").read_bytes()
    p, _ = read("v1.0-pods-watch.ndjson")
    (q,) = p.outcomes.take_quarantined()
    assert raw.endswith(q.raw) and not raw.endswith(b"\n")
