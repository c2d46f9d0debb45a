"""Conformance of the k8sm leader parser with transcripts of etcd's v2 keys API
(``tests/corpus/real/k8sm/``: every exchange V2LeaderKeyClient had with a real etcd serving v2
while the key was written as k8sm's elector writes it; see ``tests/corpus/real/README.md``).

Each answer goes to the parser as the client hands it over (a read after a lost event window
is ``resumed``), and must give exactly the events listed; every answer is accounted for:
answers in = answers that gave events + skipped + quarantined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmevents.sources.k8sm import DEFAULT_KEY, V2_WINDOW_LOST, LeaderParser
from tests.unit.sources._helpers import canonical, fixed_now, folded

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "real" / "k8sm"
A = "2f8e1c0b9a7d6e54_7b1c9d2e-40e6-11e5-a3f1-42010af00021"
B = "9c3d5e7f1a2b4c6d_0e4f6a8b-40e7-11e5-a3f1-42010af00022"
C = "k8sm-executor-3:5b2e8f4a-c1d7-4e92-8a63-0f1e2d3c4b5a"
D = "k8sm-executor-7:a94c2e61-3b8d-4f05-9e7a-6d5c4b3a2f10"
T0, T1 = "2015-07-08T15:05:00.000000Z", "2015-07-08T15:05:00.000001Z"
RENEWED = "leader key renewed by the same leader"

EXPECTED: dict[str, tuple[int, list[tuple[Any, ...]], dict[str, int]]] = {
    # answers, (stream, seq, type, payload, dedupe key, occurred_at, clock, actor), skipped
    "v1.1-etcd-v2-election.ndjson": (7, [
        (f"{DEFAULT_KEY}@4", 0, "scheduler.leader_elected", {"identity": A, "previous": None},
         f"scheduler.leader_elected|{A}|{T0}", T0, "adapter", None),
        (f"{DEFAULT_KEY}@9", 0, "scheduler.leader_elected", {"identity": B, "previous": A},
         f"scheduler.leader_elected|{B}|{T0}", T0, "adapter", None),
    ], {"leader key absent (no leader)": 1, RENEWED: 3,
        "leader key expired: the leader stopped renewing it (no catalogue type)": 1}),
    "v1.2-etcd-v2-failover.ndjson": (6, [
        (f"{DEFAULT_KEY}@12", 0, "scheduler.leader_elected", {"identity": C, "previous": None},
         f"scheduler.leader_elected|{C}|{T0}", T0, "adapter", None),
        (f"{DEFAULT_KEY}@16", 1, "source.gap", {"stream_id": f"{DEFAULT_KEY}@16", "expected_seq": 0, "got_seq": 1},
         f"source.gap|{DEFAULT_KEY}@16|{T0}", T0, "adapter", None),
        (f"{DEFAULT_KEY}@16", 1, "scheduler.leader_elected", {"identity": D, "previous": C},
         f"scheduler.leader_elected|{D}|{T1}", T1, "adapter", None),
    ], {RENEWED: 2, "etcd v2 watch lost its event window (errorCode 401): the key is re-read": 1,
        "leader key deleted (no catalogue type)": 1}),
}


def transcript(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (CORPUS / name).read_text().splitlines()]


def replay(name: str) -> tuple[LeaderParser, list[dict[str, Any]]]:
    """The answers of a transcript through the parser, as V2LeaderKeyClient hands them over."""
    p = LeaderParser("prod-1", now=fixed_now)
    out: list[dict[str, Any]] = []
    lost = False
    for x in transcript(name):
        read = "wait=true" not in x["request"]
        out += p.feed_v2(x["body"], resumed=read and lost)
        lost = isinstance(x["body"], dict) and x["body"].get("errorCode") in V2_WINDOW_LOST
    return p, canonical(out)


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_transcript_gives_exactly_the_expected_elections_and_accounts_for_every_answer(name: str) -> None:
    answers, events, skipped = EXPECTED[name]
    p, evs = replay(name)
    assert [(e["source"]["stream_id"], e["source"]["seq"], e["type"], e["payload"], e["dedupe_key"],
             e["occurred_at"], e["clock"], e["actor"]) for e in evs] == events
    assert p.skipped.counts == skipped
    assert p.outcomes.quarantined_total == 0
    assert p.records_in == answers == len(transcript(name))
    assert p.records_in == p.records_mapped + sum(p.skipped.counts.values()) + p.outcomes.quarantined_total
    st = folded(evs)
    assert st.clusters["prod-1"]["scheduler_leader"]["identity"] == events[-1][3]["identity"]


def test_an_answer_it_cannot_read_is_quarantined_and_the_next_one_is_read() -> None:
    p = LeaderParser("prod-1", now=fixed_now)
    good = transcript("v1.1-etcd-v2-election.ndjson")[1]["body"]
    bad = json.loads(json.dumps(good))
    del bad["node"]["createdIndex"]
    assert p.feed_v2(bad) == [] and p.feed_v2({"action": "wat", "node": {}}) == []
    assert [e["type"] for e in p.feed_v2(good)] == ["scheduler.leader_elected"]
    assert [q.reason for q in p.outcomes.take_quarantined()] == [
        "etcd v2 answer: KeyError: 'createdIndex'", "etcd v2 answer: ValueError: unknown v2 action 'wat'"]
    assert (p.records_in, p.records_mapped) == (3, 1)
