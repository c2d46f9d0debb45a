"""The fold's output on recorded logs is pinned: a change made for speed must not change it.

Two seeded simulator logs (the default profile, with failovers, reconciliations, evictions
and re-deliveries; the large profile at a fiftieth of its size) are folded with the default
retention and with a small one (so pruning, the dedupe window's rotation and the per-task
uuid limit all happen), and what the fold gives is hashed: the snapshot's bytes, every
annotation, the dirty sets taken along the way and the canonical bytes of entities read
between events. The digests were taken with the reducer before the handlers were tuned
(issue 17, kmevents a3b64e5), and taken again at 4e802c9 (still before the tuning) when
snapshot lines began to name conditions (format 3) and nodes and executors were packed:
the snapshot's bytes changed there, not the fold. Snapshot format 4 (packed kinds as they
rest, compressed, with their dictionaries) did not change them: the digest takes the
state's format-3 bytes and checks that its format-4 snapshot loads back to them; the
format-4 bytes are pinned apart (``SNAPSHOTS``).

If ``test_the_recorded_logs_are_the_ones_pinned`` fails, the simulator's output changed,
not the fold: re-pin both digests (``python -m tests.unit.reducer.test_fold_pinned``) from a
commit whose fold is known to be right, then check the fold on the new logs there.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import orjson
import pytest

from kmevents.reducer import ClusterState, Retention, apply, few_collections
from kmevents.reducer.snapshot import FORMAT, FORMAT_3, FORMAT_4, FORMAT_5, dump, load
from kmevents.simulate import iter_lines

SMALL = Retention(max_terminal_tasks=300, max_closed_offers=200, max_removed_agents=3, max_deleted_pods=100,
                  max_terminal_other=30, max_age_seconds=600.0, dedupe_window=2_000, uuids_per_task=3)

#: name -> (simulator arguments, digest of the log's lines)
LOGS: dict[str, tuple[dict[str, Any], str]] = {
    "default": ({"cluster": "pin-d", "seed": 3, "events": 12_000}, "e32e76e04871cf8f45904611a0956c12d8e88607fa43cbcaa1d35ca376664cf2"),
    "large": ({"cluster": "pin-l", "seed": 5, "events": 12_000, "profile": "large", "scale": 0.02}, "ee503987a1ab437619b9abcb5c045dc0c63004ed46f6695049c5e72f5a3c5d96"),
}
#: (log, retention) -> digest of everything the fold gave
FOLDS = {
    ("default", "default"): "ae2ad4eaa93f3d5ca06c38dd203bd9da9f1c2671eccbb56e51445e83123cc0cf",
    ("default", "small"): "b2c3556dbf2ec6581163e0b8737622106f07b80d5b97b932011d2275928ce6e7",
    ("large", "default"): "5732829954839df15d4943bed24733ceeaf63347965409a0f46baf1b48b753c3",
    ("large", "small"): "ec05bd1287b79c62847a8159c5485995d563e8c43051934cde51d29d7be76a98",
}
#: (log, retention) -> digest of the fold's format-4 snapshot (pinned at the commit that
#: introduced format 4, after test_format_4_and_format_3_load_to_the_same_state and the
#: format-3 digests above held unchanged there)
SNAPSHOTS = {
    ("default", "default"): "89673521e78b13f66c011f11d9df8e98fd97c9c9e058b9a7fd842701a0fc72a5",
    ("default", "small"): "8a4e6296b61b5de96ac7da7cea2f39c787999e212d35af37f088a7d24ede0790",
    ("large", "default"): "11e3b117eeef13e088d70d30c0ef5ffad826eb8efed271369c97a49e9e60d8ca",
    ("large", "small"): "8d77e087710fe04b7094b0c0c9134719b57f48d796c4ef9940eab709de9256ad",
}
#: the same for format 5 (every kind a section, indexes by position: pinned at the commit
#: that introduced it, with FOLDS and the format-4 digests above unchanged there)
SNAPSHOTS_5 = {
    ("default", "default"): "f94a2fd50cc0b756fd08f2bc71a5744297878806fa875ae453656bbd821419d1",
    ("default", "small"): "e52ffb3a7bb71689293f46b6d151931eb511ebeacd0d95d9cef024cd7ae1d323",
    ("large", "default"): "1a21999a8154477b82236b9aff6b02369d94e976a506927b0f68cf6928bf1229",
    ("large", "small"): "694c7028732368c6b34cfaf154297b04897914832a629839e67d2812035bebf7",
}
#: the same for format 6 (the retention order in columns, the dedupe window's bitmaps stored:
#: pinned at the commit that introduced it, with FOLDS and the format-4 and -5 digests above
#: unchanged there)
SNAPSHOTS_6 = {
    ("default", "default"): "5461ab8b7e13b55094d4f1992c2630516a819ea1d582039dd3e8d7594610bcd9",
    ("default", "small"): "ac9b520ee3066b8275a92aede89db28c69bd91c49d372d56c5aace854f332402",
    ("large", "default"): "d2645720dbb51a915e75b587d51c87e88558c8f859da82f09782bc332ae1497a",
    ("large", "small"): "4139db0160175431bf3f65bf0d25b29995307f14f675b108174e55e26423838c",
}


def _lines(name: str) -> list[bytes]:
    args = dict(LOGS[name][0])
    return list(iter_lines(args.pop("cluster"), args.pop("seed"), args.pop("events"), **args))


def _log_digest(lines: list[bytes]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line)
    return h.hexdigest()


def _fold_digest(lines: list[bytes], retention: Retention | None, *, packs: bool = True) -> str:
    h = hashlib.sha256()
    st = ClusterState.empty(orjson.loads(lines[0])["cluster"], retention)
    st.packs = packs
    with few_collections():
        for i, line in enumerate(lines):
            anns = apply(st, orjson.loads(line), partition=0, offset=i)
            if anns:
                h.update(orjson.dumps(anns, option=orjson.OPT_SORT_KEYS))
            if i % 97 == 0:
                dirty = sorted(st.take_dirty())
                h.update(orjson.dumps(dirty))
                for kind, eid in dirty[:20]:
                    h.update(st.entity_bytes(kind, eid) or b"-")
    # The state's canonical bytes: snapshot format 3 (format 4 holds the packed kinds as they
    # rest, compressed; pinned apart below). The stored format loads back to the same state.
    canonical = dump(st, format=FORMAT_3)
    h.update(canonical)
    assert dump(load(st.to_snapshot()), format=FORMAT_3) == canonical
    assert dump(load(dump(st, format=FORMAT_4)), format=FORMAT_3) == canonical
    return h.hexdigest()


def _snapshot_digest(lines: list[bytes], retention: Retention | None, format: str = FORMAT_4) -> str:
    """The digest of the fold's format-4 (or ``format``) snapshot: where each packed table
    trained its dictionary shows in it (a state must dump the same bytes whichever fold made it)."""
    st = ClusterState.empty(orjson.loads(lines[0])["cluster"], retention)
    with few_collections():
        for i, line in enumerate(lines):
            apply(st, orjson.loads(line), partition=0, offset=i)
    return hashlib.sha256(dump(st, format=format)).hexdigest()


@pytest.fixture(scope="module")
def logs() -> dict[str, list[bytes]]:
    return {name: _lines(name) for name in LOGS}


def test_the_recorded_logs_are_the_ones_pinned(logs: dict[str, list[bytes]]) -> None:
    for name, lines in logs.items():
        assert _log_digest(lines) == LOGS[name][1], f"the simulator's {name} log changed: see the module docstring"


@pytest.mark.parametrize(("log", "retention"), sorted(FOLDS))
def test_the_fold_gives_what_it_gave_before_the_handlers_were_tuned(
        logs: dict[str, list[bytes]], log: str, retention: str) -> None:
    if _log_digest(logs[log]) != LOGS[log][1]:
        pytest.skip("the log changed (test_the_recorded_logs_are_the_ones_pinned says so)")
    got = _fold_digest(logs[log], SMALL if retention == "small" else None)
    assert got == FOLDS[(log, retention)]


@pytest.mark.parametrize("log", sorted(LOGS))
def test_a_fold_that_leaves_values_decoded_gives_the_same(logs: dict[str, list[bytes]], log: str) -> None:
    """``ClusterState.packs`` off (history's short folds): the same annotations, dirty sets,
    entities and state, values only left decoded between events."""
    if _log_digest(logs[log]) != LOGS[log][1]:
        pytest.skip("the log changed (test_the_recorded_logs_are_the_ones_pinned says so)")
    assert _fold_digest(logs[log], SMALL, packs=False) == FOLDS[(log, "small")]


@pytest.mark.parametrize(("log", "retention"), sorted(SNAPSHOTS))
def test_the_folds_format_4_snapshot_is_the_one_pinned(logs: dict[str, list[bytes]], log: str, retention: str) -> None:
    """The stored bytes, with each packed table's dictionary: they change when the fold's
    output does or when where and how a table trains does (stored snapshots then differ
    in bytes from a new fold's: verify compares them)."""
    if _log_digest(logs[log]) != LOGS[log][1]:
        pytest.skip("the log changed (test_the_recorded_logs_are_the_ones_pinned says so)")
    assert _snapshot_digest(logs[log], SMALL if retention == "small" else None) == SNAPSHOTS[(log, retention)]


@pytest.mark.parametrize(("log", "retention"), sorted(SNAPSHOTS_5))
def test_the_folds_format_5_snapshot_is_the_one_pinned(logs: dict[str, list[bytes]], log: str, retention: str) -> None:
    if _log_digest(logs[log]) != LOGS[log][1]:
        pytest.skip("the log changed (test_the_recorded_logs_are_the_ones_pinned says so)")
    assert _snapshot_digest(logs[log], SMALL if retention == "small" else None, FORMAT_5) == SNAPSHOTS_5[(log, retention)]


@pytest.mark.parametrize(("log", "retention"), sorted(SNAPSHOTS_6))
def test_the_folds_format_6_snapshot_is_the_one_pinned(logs: dict[str, list[bytes]], log: str, retention: str) -> None:
    if _log_digest(logs[log]) != LOGS[log][1]:
        pytest.skip("the log changed (test_the_recorded_logs_are_the_ones_pinned says so)")
    assert _snapshot_digest(logs[log], SMALL if retention == "small" else None, FORMAT) == SNAPSHOTS_6[(log, retention)]


if __name__ == "__main__":  # print the digests to pin
    for name in LOGS:
        lines = _lines(name)
        print(name, _log_digest(lines))
        for ret in ("default", "small"):
            print(" ", ret, _fold_digest(lines, SMALL if ret == "small" else None),
                  _snapshot_digest(lines, SMALL if ret == "small" else None),
                  _snapshot_digest(lines, SMALL if ret == "small" else None, FORMAT_5),
                  _snapshot_digest(lines, SMALL if ret == "small" else None, FORMAT))
    sys.exit(0)
