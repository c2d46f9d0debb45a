"""Archives that carry snapshots: frames a read can seek to, snapshots replay starts from,
format 1 still read, and verification of the snapshots with no server."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from kmevents.replay import archive, archiving
from kmevents.replay.engine import Target, replay
from kmevents.replay.records import LogRecord
from kmevents.replay.snapshots import ArchiveSnapshots
from kmevents.replay.sources import ArchiveSource
from kmevents.replay.verify import verify_offline

from kmevents import chain
from kmevents.reducer import REDUCER_VERSION, ClusterState, apply
from kmevents.simulate import iter_lines
from kmevents.store.snapshots import Snapshots
from tests.unit.replay.test_offline_cli import km

CLUSTER = "arcsnap"
N = 3000


@pytest.fixture(scope="module")
def log() -> list[LogRecord]:
    return [LogRecord(i, 1_767_225_600_000 + i, CLUSTER.encode(), line.rstrip(b"\n"))
            for i, line in enumerate(iter_lines(CLUSTER, 5, N))]


def fold_to(recs: list[LogRecord], offset: int) -> tuple[ClusterState, str]:
    st, h = ClusterState.empty(CLUSTER), chain.GENESIS
    for r in recs[:offset + 1]:
        apply(st, orjson.loads(r.value or b""), partition=0, offset=r.offset)
        h = chain.link(h, r.key, r.value)
    st.take_dirty()
    return st, h


def write(path: Path, recs: list[LogRecord], snaps: dict[int, tuple[bytes, str]], start: int = 0) -> dict[str, Any]:
    w = archive.ArchiveWriter(path, cluster=CLUSTER, partition=0, topic="t", covers_from=start,
                              chain_head_start=chain.GENESIS if start == 0 else None, heads_at=set(snaps),
                              frame_bytes=256 * 1024)
    for r in recs:
        w.add(r)
    for off, (data, head) in sorted(snaps.items()):
        w.add_snapshot(data, offset=off, chain_head=head, reducer_version=REDUCER_VERSION)
    return w.close()


@pytest.fixture(scope="module")
def with_snaps(log: list[LogRecord], tmp_path_factory: pytest.TempPathFactory) -> Path:
    snaps = {}
    for off in (999, 1999):
        st, h = fold_to(log, off)
        snaps[off] = (st.to_snapshot(chain_hash=h), h)
    path = tmp_path_factory.mktemp("arc") / "a.kmarch"
    write(path, log, snaps)
    return path


def test_records_come_back_whole_and_a_read_decompresses_only_frames_from_its_start(
        log: list[LogRecord], with_snaps: Path) -> None:
    h = archive.read_header(with_snaps)
    assert h["format"] == archive.FORMAT and len(h["frames"]) >= 8  # ~3 MB of records in 256 KiB frames
    assert [r for b in archive.iter_batches(with_snaps) for r in b] == log  # the snapshots are not read as records
    k = 2500
    got = [r for b in archive.iter_batches(with_snaps, start=k) for r in b]
    assert got[0].offset <= k and got[-1].offset == N - 1 and len(got) < N
    assert [r for r in got if r.offset >= k] == log[k:]
    assert [s["offset"] for s in h["snapshots"]] == [999, 1999]


def test_a_snapshot_reads_back_byte_for_byte(log: list[LogRecord], with_snaps: Path) -> None:
    st, head = fold_to(log, 1999)
    assert archive.read_snapshot(with_snaps, 1) == st.to_snapshot(chain_hash=head)
    with pytest.raises(archive.ArchiveError, match="no snapshot #2"):
        archive.read_snapshot(with_snaps, 2)


def test_replay_from_the_archive_starts_at_its_newest_snapshot_and_equals_the_fold(
        log: list[LogRecord], with_snaps: Path) -> None:
    src = ArchiveSource(with_snaps)
    rng = random.Random(3)
    for off in [999, 1000, 1998, 1999, N - 1, rng.randrange(0, 999), *rng.sample(range(1000, N), 3)]:
        r = asyncio.run(replay(src, CLUSTER, Target(offset=off), snapshots=ArchiveSnapshots([src]), progress=False))
        expect, head = fold_to(log, off)
        assert r.from_snapshot == (1999 if off >= 1999 else 999 if off >= 999 else None), off
        assert r.state.to_snapshot() == expect.to_snapshot(), off
        assert r.chain_head == head


def test_format_1_archives_are_still_read(log: list[LogRecord], tmp_path: Path) -> None:
    """Format 1: the header, then ONE zstd stream of records; no frames, no snapshots."""
    body = b"".join(archive._REC.pack(r.offset, r.timestamp, len(r.key or b""), len(r.value or b""))
                    + (r.key or b"") + (r.value or b"") for r in log[:500])
    header = orjson.dumps({"format": archive.FORMAT_1, "cluster": CLUSTER, "partition": 0, "topic": "t",
                           "covers_from": 0, "covers_to": 499, "count": 500, "first_offset": 0, "last_offset": 499,
                           "chain_head_start": chain.GENESIS}, option=orjson.OPT_SORT_KEYS)
    p = tmp_path / "old.kmarch"
    p.write_bytes(archive.MAGIC + len(header).to_bytes(4, "big") + header
                  + zstandard.ZstdCompressor().compress(body))
    assert [r for b in archive.iter_batches(p, start=300) for r in b] == log[:500]
    src = ArchiveSource(p)
    r = asyncio.run(replay(src, CLUSTER, Target(offset=400), snapshots=ArchiveSnapshots([src]), progress=False))
    assert r.from_snapshot is None and r.state.to_snapshot() == fold_to(log, 400)[0].to_snapshot()


def test_a_newer_format_is_refused_with_what_this_kmevents_reads(tmp_path: Path) -> None:
    header = orjson.dumps({"format": "kmevents.archive/9"})
    p = tmp_path / "new.kmarch"
    p.write_bytes(archive.MAGIC + len(header).to_bytes(4, "big") + header)
    with pytest.raises(archive.ArchiveError, match="archive/9") as e:
        archive.read_header(p)
    assert "kmevents.archive/2" in (e.value.hint or "")


def test_verify_offline_checks_the_snapshots_and_finds_a_forged_one(log: list[LogRecord], with_snaps: Path,
                                                                   tmp_path: Path) -> None:
    clean = asyncio.run(verify_offline(ArchiveSource(with_snaps), CLUSTER))
    assert clean.clean and clean.snapshots_checked == 2, [f.as_dict() for f in clean.findings]
    # a state of offset 1500 filed under 1999 with 1999's chain head: loadable, wrong content
    st, _ = fold_to(log, 1500)
    _, head = fold_to(log, 1999)
    forged = tmp_path / "forged.kmarch"
    write(forged, log, {1999: (st.to_snapshot(chain_hash=head), head)})
    report = asyncio.run(verify_offline(ArchiveSource(forged), CLUSTER))
    assert [(f.kind, f.key) for f in report.drift] == [("snapshot", "snapshot@1999")]
    assert "content differs from the fold" in report.drift[0].detail
    # a wrong chain head
    wrong = tmp_path / "wrong.kmarch"
    good, _ = fold_to(log, 999)
    write(wrong, log, {999: (good.to_snapshot(chain_hash=head), head)})
    report = asyncio.run(verify_offline(ArchiveSource(wrong), CLUSTER))
    assert report.drift and "the log's chain there is" in report.drift[0].detail


def test_a_filtered_archive_refuses_snapshots(log: list[LogRecord], tmp_path: Path) -> None:
    w = archive.ArchiveWriter(tmp_path / "f.kmarch", cluster=CLUSTER, partition=0, topic="t", covers_from=0,
                              filtered={"namespaces": ["a"], "token": "x"})
    with pytest.raises(Exception, match="carries no snapshots"):
        w.add_snapshot(b"{}", offset=0, chain_head="x", reducer_version=REDUCER_VERSION)
    w.abort()
    assert list(tmp_path.iterdir()) == []  # nothing left behind


class _Listed(Snapshots):
    def __init__(self, entries: list[dict[str, Any]], data: dict[int, bytes]) -> None:
        self._entries, self.data = entries, data

    async def entries(self, cluster: str) -> list[dict[str, Any]]:
        return self._entries

    async def state_bytes(self, entry: dict[str, Any]) -> bytes | None:
        return self.data.get(int(entry["offset"]))


def test_export_keeps_snapshots_about_every_n_offsets_whose_chain_matches(log: list[LogRecord],
                                                                          tmp_path: Path) -> None:
    data, entries = {}, []
    for off in (299, 599, 899, 1199, 1499, 1799):
        st, head = fold_to(log, off)
        data[off] = st.to_snapshot(chain_hash=head)
        entries.append({"offset": off, "chain": head if off != 1499 else "0" * 64, "reducer_version": REDUCER_VERSION})
    entries.append({"offset": 2099, "chain": "x", "reducer_version": REDUCER_VERSION - 1})  # older reducer: unusable
    write(tmp_path / "plain.kmarch", log, {})
    src = ArchiveSource(tmp_path / "plain.kmarch")
    h = asyncio.run(archiving.export(src, tmp_path / "e.kmarch", cluster=CLUSTER, topic="t", start=0, end=N - 1,
                                     chain_head_start=chain.GENESIS, snapshots=_Listed(entries, data),
                                     snapshot_every=500))
    # spacing first: 599 (600 after offset -1), 1199, 1799 (1499 is only 300 after 1199)
    assert [s["offset"] for s in h["snapshots"]] == [599, 1199, 1799]
    assert archive.read_snapshot(tmp_path / "e.kmarch", 2) == data[1799]
    h = asyncio.run(archiving.export(src, tmp_path / "f.kmarch", cluster=CLUSTER, topic="t", start=0, end=N - 1,
                                     chain_head_start=chain.GENESIS, snapshots=_Listed(entries, data),
                                     snapshot_every=250))
    assert [s["offset"] for s in h["snapshots"]] == [299, 599, 899, 1199, 1799]  # 1499's chain is not the log's
    h = asyncio.run(archiving.export(src, tmp_path / "g.kmarch", cluster=CLUSTER, topic="t", start=0, end=N - 1,
                                     chain_head_start=chain.GENESIS, snapshots=_Listed(entries, data),
                                     snapshot_every=0))
    assert h["snapshots"] == []


def test_export_keeps_each_snapshots_time_and_the_archive_places_a_time_without_loading(
        log: list[LogRecord], tmp_path: Path) -> None:
    """The index entries' ``max_occurred_at`` goes into the archive's header, and finding the newest
    snapshot before a time among the archive's loads only the one it returns."""
    data, entries = {}, []
    for off in (499, 999, 1499, 1999, 2499):
        st, head = fold_to(log, off)
        data[off] = st.to_snapshot(chain_hash=head)
        entries.append({"offset": off, "chain": head, "reducer_version": REDUCER_VERSION,
                        "max_occurred_at": st.max_occurred_at})
    write(tmp_path / "plain.kmarch", log, {})
    h = asyncio.run(archiving.export(ArchiveSource(tmp_path / "plain.kmarch"), tmp_path / "t.kmarch", cluster=CLUSTER,
                                     topic="t", start=0, end=N - 1, chain_head_start=chain.GENESIS,
                                     snapshots=_Listed(entries, data), snapshot_every=1))
    assert [s.get("max_occurred_at") for s in h["snapshots"]] == [e["max_occurred_at"] for e in entries]

    class Counting(ArchiveSnapshots):
        loaded: list[int] = []

        async def load(self, entry: dict[str, Any]) -> ClusterState | None:
            self.loaded.append(int(entry["offset"]))
            return await super().load(entry)

    snaps = Counting([ArchiveSource(tmp_path / "t.kmarch")])
    bound = entries[3]["max_occurred_at"]  # the snapshot at 1999's own latest time
    got = asyncio.run(snaps.best(CLUSTER, at_or_before=N - 1, occurred_bound=bound))
    assert got is not None and got.offset == 1999 and Counting.loaded == [1999]
    assert got.state.max_occurred_at == bound


def test_state_from_the_archive_alone_on_the_cli_starts_at_a_snapshot(log: list[LogRecord], with_snaps: Path) -> None:
    out = km("state", "--source", str(with_snaps), "--offset", "2500", "--format", "json", "--no-progress")
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert doc["position"]["started_from_snapshot"] == 1999
    assert doc["position"]["covered_to_offset"] == 2500 and doc["position"]["events_applied"] == 501
    without = km("state", "--source", str(with_snaps), "--offset", "2500", "--format", "json", "--no-progress",
                 "--no-snapshots")
    b = orjson.loads(without.stdout)
    assert b["position"].get("started_from_snapshot") is None and b["state"] == doc["state"]
    v = km("verify", "--source", str(with_snaps), "--format", "json")
    assert v.returncode == 0, v.stdout + v.stderr
    assert orjson.loads(v.stdout)["snapshots_checked"] == 2


def test_reading_archives_loads_no_kafka_or_etcd_client(with_snaps: Path) -> None:
    """Cold start of the laptop case: aiokafka and aetcd cost ~0.1 s of imports and are not used."""
    import subprocess
    import sys

    code = ("import sys; from kmevents.cli import main; "
            f"rc = main(['state', '--source', {str(with_snaps)!r}, '--offset', '2500', '--format', 'json', "
            "'--no-progress']); "
            "print(sorted(m for m in ('aiokafka', 'aetcd') if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


def test_archive_info_tells_what_an_archive_holds_from_its_header(with_snaps: Path) -> None:
    out = km("archive", "info", str(with_snaps.parent))
    assert out.returncode == 0, out.stderr
    assert "offsets 0..2999: 3,000 records" in out.stdout and "2 snapshots: @999" in out.stdout
    doc = orjson.loads(km("archive", "info", str(with_snaps), "--format", "json").stdout)
    assert [x["offset"] for x in doc[0]["snapshots"]] == [999, 1999] and doc[0]["count"] == N
    assert doc[0]["size_bytes"] == with_snaps.stat().st_size
    bad = km("archive", "info", str(with_snaps.parent / "missing.kmarch"))
    assert bad.returncode == 2 and "no such archive" in bad.stderr


def test_export_help_states_the_default_spacing_export_uses() -> None:
    """The parser does not import replay (cold start): its help states the default, this keeps it true."""
    out = km("archive", "export", "--help")
    assert f"default {archiving.SNAPSHOT_EVERY:,}" in " ".join(out.stdout.split())
