"""The host directory (kmevents/store/hosts.py): what it says of offset S is what a scan of the
records before S learns, also after a worker that died mid-batch left changes past its checkpoint."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from kmevents import layout
from kmevents.store import hosts

IDS = ["S0", "S1", "S2"]
HOSTS = ["a", "b", "c"]


def named(offset: int, aid: str, host: str, kind: int) -> dict[str, Any]:
    """An event of each kind that says ``aid`` is on ``host``."""
    if kind == 0:
        return {"type": "agent.added", "payload": {"agent": {"id": aid, "hostname": host}}}
    if kind == 1:
        return {"type": "offer.offered", "payload": {"offer": {"id": f"o{offset}", "agent_id": aid, "hostname": host}}}
    return {"type": "pod.scheduled", "payload": {"pod": {"name": "p"}, "agent_id": aid, "host": host}}


def scan(events: list[dict[str, Any]], before: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for ev in events[:before]:
        hosts.learn(ev, out)
    return out


def entries(d: hosts.Directory) -> list[tuple[str, list[tuple[int, str]]]]:
    """The directory as a reader gets it back from etcd (its values encoded and decoded)."""
    return [(aid, hosts.decode(hosts.encode(ch))) for aid, ch in d.changes.items()]


log_of = st.lists(st.one_of(
    st.tuples(st.sampled_from(IDS), st.sampled_from(HOSTS), st.integers(0, 2)).map(lambda x: ("named", *x)),
    st.just(("other",))), max_size=40)


def events_of(raw: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [named(i, r[1], r[2], r[3]) if r[0] == "named" else {"type": "task.status_updated", "payload": {
        "status": {"agent_id": "S0"}}} for i, r in enumerate(raw)]


@settings(max_examples=200, deadline=None)
@given(log_of, st.data())
def test_the_map_at_any_offset_is_what_a_scan_of_the_records_before_it_learns(raw: list[Any],
                                                                             data: st.DataObject) -> None:
    events = events_of(raw)
    d = hosts.Directory()
    for i, ev in enumerate(events):
        if (got := hosts.host_named(ev)) is not None:
            d.note(i, *got)
    for before in range(len(events) + 1):
        assert hosts.map_before(entries(d), before) == scan(events, before)
    through = data.draw(st.integers(-1, len(events)))  # the checkpoint a reader finds
    for before in range(len(events) + 1):  # what it takes: up to the checkpoint, the rest it learns
        assert hosts.Known(entries(d), through).before(before) == scan(events, min(before, through + 1))


@settings(max_examples=200, deadline=None)
@given(log_of, st.data())
def test_a_successor_of_a_worker_that_died_past_its_checkpoint_ends_with_the_same_directory(
        raw: list[Any], data: st.DataObject) -> None:
    events = events_of(raw)
    ckpt = data.draw(st.integers(-1, len(events) - 1))
    ahead = data.draw(st.integers(ckpt, len(events) - 1))  # written in a chunk before the checkpoint's
    first = hosts.Directory()
    for i, ev in enumerate(events[:ahead + 1]):
        if (got := hosts.host_named(ev)) is not None:
            first.note(i, *got)
    # the successor reads what etcd holds (the dead worker's changes through ``ahead``), refolds from ckpt + 1
    succ = hosts.Directory({aid: [list(c) for c in ch] for aid, ch in entries(first)})
    for i, ev in enumerate(events[ckpt + 1:], start=ckpt + 1):
        if (got := hosts.host_named(ev)) is not None:
            succ.note(i, *got)
    whole = hosts.Directory()
    for i, ev in enumerate(events):
        if (got := hosts.host_named(ev)) is not None:
            whole.note(i, *got)
    assert {a: c for a, c in succ.changes.items() if c} == whole.changes


def test_take_writes_each_changed_id_once_and_only_changes() -> None:
    d = hosts.Directory()
    d.note(3, "S1", "a")
    d.note(9, "S1", "a")  # the same host: no change
    d.note(12, "S2", "b")
    got = d.take("/kmevents/v1/r9", "prod")
    assert got == {layout.hosts_key("/kmevents/v1/r9", "prod", "S1"): b'[[3,"a"]]',
                   layout.hosts_key("/kmevents/v1/r9", "prod", "S2"): b'[[12,"b"]]'}
    assert d.take("/kmevents/v1/r9", "prod") == {}
    d.note(20, "S1", "c")
    assert orjson.loads(d.take("/kmevents/v1/r9", "prod")[layout.hosts_key("/kmevents/v1/r9", "prod", "S1")]) == [
        [3, "a"], [20, "c"]]


def test_what_the_log_says_of_hosts_and_what_it_does_not() -> None:
    assert hosts.host_named(named(1, "S1", "h", 0)) == ("S1", "h")
    assert hosts.host_named({"type": "agent.reregistered", "payload": {"agent": {"id": "S1", "hostname": "h"}}}) == (
        "S1", "h")
    assert hosts.host_named(named(1, "S1", "h", 1)) == ("S1", "h")
    assert hosts.host_named(named(1, "S1", "h", 2)) == ("S1", "h")
    assert hosts.host_named({"type": "agent.removed", "payload": {"agent_id": "S1"}}) is None
    assert hosts.host_named({"type": "pod.scheduled", "payload": {"agent_id": "S1", "host": ""}}) is None
    assert hosts.host_named({"type": "offer.offered", "payload": {"offer": "junk"}}) is None
    assert hosts.decode(b"not json") == [] and hosts.decode(b'[[1,"a"],[2,3]]') == [(1, "a")]


def test_verify_decodes_every_record_whose_type_says_a_host() -> None:
    from kmevents.replay import verify_hosts

    for t in hosts.LEARNS:
        quoted = b'"' + t.encode() + b'"'
        assert any(n in quoted for n in verify_hosts.NEEDLES), t
    assert not any(n in b'{"type":"task.status_updated"}' for n in verify_hosts.NEEDLES)


def test_a_hostile_records_type_or_fields_say_no_host_and_raise_nothing() -> None:
    for ev in ({"type": ["agent.added"]}, {"type": {"a": 1}}, {"type": None}, {"type": "agent.added", "payload": []},
               {"type": "agent.added", "payload": {"agent": {"id": ["S1"], "hostname": "h"}}},
               {"type": "pod.scheduled", "payload": {"agent_id": "S1", "host": {"x": 1}}}):
        assert hosts.host_named(ev) is None
        got: dict[str, str] = {}
        hosts.learn(ev, got)
        assert got == {}
