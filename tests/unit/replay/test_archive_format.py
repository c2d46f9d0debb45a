"""The archive format: round trips, header, chain, damage detection, merged sources."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kmevents.replay import archive
from kmevents.replay.records import LogRecord
from kmevents.replay.sources import ArchiveSource, MergedSource

from kmevents import chain


def recs(n: int, start: int = 0, step: int = 1) -> list[LogRecord]:
    return [LogRecord(start + i * step, 1_700_000_000_000 + i, b"c1",
                      b'{"type":"x.y","schema_version":1,"n":%d}' % i) for i in range(n)]


def head_of(rs: list[LogRecord], h: str = chain.GENESIS) -> str:
    for r in rs:
        h = chain.link(h, r.key, r.value)
    return h


def test_round_trip_keeps_offsets_times_keys_and_bytes(tmp_path: Path) -> None:
    rs = recs(50_000, step=3) + [LogRecord(10**6, 5, None, None), LogRecord(10**6 + 1, 6, b"", b"")]
    h = archive.write(tmp_path / "a.kmarch", rs, cluster="c1", partition=2, topic="ev", covers_from=0)
    back = [r for b in archive.iter_batches(tmp_path / "a.kmarch") for r in b]
    assert back == rs
    assert h["count"] == len(rs) and h["first_offset"] == 0 and h["last_offset"] == 10**6 + 1
    assert h["chain_head_end"] == head_of(rs)
    assert h["schema_versions"]["x.y"] == [1]
    assert archive.read_header(tmp_path / "a.kmarch") == h


def test_frames_read_a_piece_at_a_time_give_every_record_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rs = recs(3_000) + [LogRecord(3_000, 5, None, None), LogRecord(3_001, 6, b"", b"")]
    w = archive.ArchiveWriter(tmp_path / "a.kmarch", cluster="c1", partition=0, topic="ev", covers_from=0,
                              frame_bytes=20_000)
    for r in rs:
        w.add(r)
    h = w.close()
    assert len(h["frames"]) > 5
    for piece in (1, 37, 4_096, 1 << 20):  # records cut across pieces, a piece holding frames' worth
        monkeypatch.setattr(archive, "_FRAME_PIECE", piece)
        assert [r for b in archive.iter_batches(tmp_path / "a.kmarch", batch=100) for r in b] == rs
        assert [r for b in archive.iter_batches(tmp_path / "a.kmarch", start=2_500) for r in b][-1] == rs[-1]


def test_truncated_archive_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.kmarch"
    archive.write(p, recs(2000), cluster="c1", partition=0, topic="ev", covers_from=0)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    with pytest.raises(archive.ArchiveError):
        list(archive.iter_batches(p))


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.kmarch"
    p.write_bytes(b"hello world, not an archive")
    with pytest.raises(archive.ArchiveError, match="not a kmevents archive"):
        archive.read_header(p)


def _all(src: MergedSource | ArchiveSource, start: int = 0, end: int | None = None) -> list[LogRecord]:
    async def go() -> list[LogRecord]:
        return [r for b in [b async for b in src.batches(start, end)] for r in b]

    return asyncio.run(go())


def test_overlapping_archives_replay_each_original_offset_once(tmp_path: Path) -> None:
    rs = recs(1000)
    archive.write(tmp_path / "a.kmarch", rs[:600], cluster="c1", partition=0, topic="ev", covers_from=0)
    archive.write(tmp_path / "b.kmarch", rs[400:], cluster="c1", partition=0, topic="ev", covers_from=400,
                  chain_head_start=head_of(rs[:400]))
    m = MergedSource([ArchiveSource(tmp_path / "b.kmarch"), ArchiveSource(tmp_path / "a.kmarch")])
    assert _all(m) == rs
    assert m.gaps == []
    assert asyncio.run(m.chain_start()) == chain.GENESIS


def test_a_hole_between_archives_is_reported_as_a_gap(tmp_path: Path) -> None:
    rs = recs(100)
    archive.write(tmp_path / "a.kmarch", rs[:40], cluster="c1", partition=0, topic="ev", covers_from=0)
    archive.write(tmp_path / "b.kmarch", rs[60:], cluster="c1", partition=0, topic="ev", covers_from=60,
                  chain_head_start=head_of(rs[:60]))
    m = MergedSource([ArchiveSource(tmp_path / "a.kmarch"), ArchiveSource(tmp_path / "b.kmarch")])
    assert [r.offset for r in _all(m)] == list(range(40)) + list(range(60, 100))
    assert m.gaps == [(40, 59)]


def test_archive_source_reads_a_sub_range(tmp_path: Path) -> None:
    rs = recs(30_000)
    archive.write(tmp_path / "a.kmarch", rs, cluster="c1", partition=0, topic="ev", covers_from=0)
    got = _all(ArchiveSource(tmp_path / "a.kmarch"), 25_000, 25_009)
    assert [r.offset for r in got] == list(range(25_000, 25_010))


def _rewrite_header(p: Path, **changes: object) -> None:
    """Edit an archive's header in place, as somebody covering an edit would."""
    import orjson

    data = p.read_bytes()
    n = int.from_bytes(data[len(archive.MAGIC):len(archive.MAGIC) + 4], "big")
    start = len(archive.MAGIC) + 4
    header = orjson.loads(data[start:start + n]) | changes
    hb = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    p.write_bytes(archive.MAGIC + len(hb).to_bytes(4, "big") + hb + data[start + n:])


def test_an_archive_whose_header_drops_its_chain_start_is_not_verified_clean(tmp_path: Path) -> None:
    # Issue 14 H5: chain_head_start set to null made `verify --source` skip the chain check.
    from kmevents.replay.verify import verify_offline

    p = tmp_path / "a.kmarch"
    archive.write(p, recs(300), cluster="c1", partition=0, topic="ev", covers_from=0)
    assert asyncio.run(verify_offline(ArchiveSource(p), "c1")).clean
    _rewrite_header(p, chain_head_start=None)
    report = asyncio.run(verify_offline(ArchiveSource(p), "c1"))
    assert not report.clean
    assert [f.kind for f in report.drift] == ["chain"] and "edited" in report.drift[0].detail


def test_a_filtered_archive_is_reported_unverifiable_not_clean(tmp_path: Path) -> None:
    from kmevents.replay.verify import verify_offline

    p = tmp_path / "f.kmarch"
    archive.write(p, recs(30), cluster="c1", partition=0, topic="ev", covers_from=0,
                  filtered={"namespaces": ["web"]})
    report = asyncio.run(verify_offline(ArchiveSource(p), "c1"))
    assert [f.kind for f in report.drift] == ["unverifiable"]
