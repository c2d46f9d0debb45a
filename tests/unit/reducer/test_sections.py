"""Full snapshots built from the last one's sections (kmevents/reducer/sections.py): the bytes of
``snapshot.dump``, byte for byte, wherever the snapshots fall."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kmevents.reducer.packed as packed_module
from kmevents.reducer import ClusterState, Retention, apply
from kmevents.reducer.dedupe import Recent
from kmevents.reducer.sections import Sections
from kmevents.reducer.snapshot import dump, snapshot_entities
from kmevents.simulate import generate
from tests.unit.reducer.streams import mixed_streams

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(mixed_streams(), st.data(), st.sampled_from([3, packed_module.TRAIN_AT]), st.sampled_from([2, 8, 100_000]),
       st.sampled_from([2, Recent.SPILL]))
def test_a_build_from_the_last_sections_is_the_dump_at_every_snapshot(
        evs: list[dict[str, Any]], data: st.DataObject, train_at: int, window: int, spill: int) -> None:
    # Snapshots at 1-4 random points, dirty sets taken at random (the worker takes them per
    # batch), tables that train between two snapshots (train_at 3: every value recompressed),
    # dedupe windows that rotate; now and then the base dropped or the state reloaded (the next
    # build then reads every kind again); halves that spill into runs (``spill`` 2: format 6
    # then stores their bitmaps, and a reload takes them). Every build must be the state's dump.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(evs)), min_size=1, max_size=4)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(packed_module, "TRAIN_AT", train_at)
        mp.setattr(Recent, "SPILL", spill)
        s = ClusterState.empty("prod-1", Retention(dedupe_window=window))
        sections, done = Sections(), 0
        for cut in cuts:
            for e in copy.deepcopy(evs[done:cut]):
                apply(s, e)
                if data.draw(st.booleans()):
                    s.take_dirty()
            done = cut
            built = sections.build(s, "h")
            assert built == dump(s, "h")
            s.mark_base()
            how = data.draw(st.sampled_from(["go on", "go on", "drop base", "reload"]))
            if how == "drop base":
                s.drop_base()
            elif how == "reload":
                s = ClusterState.from_snapshot(built)
                s.mark_base()
        for e in copy.deepcopy(evs[done:]):
            apply(s, e)
        assert sections.build(s, "h") == dump(s, "h")


def _folded(n: int) -> tuple[ClusterState, Sections, list[dict[str, Any]]]:
    evs = list(generate("s1", 4, 3000))
    s = ClusterState.empty("s1")
    for i, e in enumerate(evs[:n]):
        apply(s, e, offset=i)
        if i % 100 == 0:
            s.take_dirty()
    sections = Sections()
    assert sections.build(s, "h") == dump(s, "h")
    s.mark_base()
    return s, sections, evs


def test_only_the_changed_entities_are_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    s, sections, evs = _folded(2000)
    for i, e in enumerate(evs[2000:2300], start=2000):
        apply(s, e, offset=i)
    s.take_dirty()
    whole: list[str] = []
    real = Sections._whole

    def counting(self: Sections, kind: str, *args: Any) -> Any:
        whole.append(kind)
        return real(self, kind, *args)

    monkeypatch.setattr(Sections, "_whole", counting)
    assert sections.build(s, "h") == dump(s, "h")
    assert whole == []  # every kind from the last sections and its changes
    s.mark_base()
    s.drop_base()  # (a full snapshot not stored: the changes since the last build are not known)
    apply(s, evs[2300], offset=2300)
    assert sections.build(s, "h") == dump(s, "h")
    assert len(whole) == len(s.kinds)


def test_a_change_the_fold_did_not_mark_shows_in_the_bytes() -> None:
    # The build trusts the marks (as deltas and etcd's writes do): an entity changed without a
    # mark keeps the last snapshot's bytes, and the comparison with the dump sees it.
    s, sections, evs = _folded(2000)
    first = dump(s, "h")
    for i, e in enumerate(evs[2000:2600], start=2000):
        apply(s, e, offset=i)
    s.take_dirty()
    base = s._base
    assert base is not None
    was = snapshot_entities(first)["pod"]
    pods = sorted(id for kind, id in base.changed if kind == "pod" and s.entity("pod", id) not in (None, was.get(id)))
    assert pods
    base.changed.discard(("pod", pods[0]))
    assert sections.build(s, "h") != dump(s, "h")
