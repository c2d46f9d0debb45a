"""RecordIO framing, positions (gaps), clock skew and backoff."""

from __future__ import annotations

import pytest

from kmevents.sources._common import Backoff, Stream
from kmevents.sources.recordio import RecordIODecoder, RecordIOError, encode
from tests.unit.sources._helpers import canonical


def test_recordio_records_survive_any_chunking() -> None:
    recs = [b'{"type":"HEARTBEAT"}', b'{"type":"X","x":"' + b"y" * 300 + b'"}', b"{}"]
    wire = b"".join(encode(r) for r in recs)
    for size in (1, 2, 7, 64, len(wire)):
        dec = RecordIODecoder()
        got = []
        for i in range(0, len(wire), size):
            got += dec.feed(wire[i:i + size])
        assert got == recs
        assert dec.pending == 0


def test_recordio_refuses_a_bad_length_prefix() -> None:
    with pytest.raises(RecordIOError):
        RecordIODecoder().feed(b"abc\n{}")
    with pytest.raises(RecordIOError):
        RecordIODecoder(max_record_bytes=10).feed(b"11\n")


def test_a_jump_in_source_positions_is_reported_as_a_gap() -> None:
    s = Stream("prod-1", "mesos.scheduler", "sched-1", now=lambda: 1436367900.0)
    assert s.record(0) == [] and s.record(1) == []
    gap = s.record(4)
    assert [e["payload"] for e in gap] == [{"stream_id": "sched-1", "expected_seq": 2, "got_seq": 4}]
    assert s.record(5) == []
    back = s.record(1)  # a forwarder restarted
    assert back[0]["payload"]["expected_seq"] == 6 and back[0]["payload"]["got_seq"] == 1
    canonical(gap + back)


def test_clock_skew_reported_once_until_it_moves_or_recovers() -> None:
    s = Stream("prod-1", "k8s.audit", "audit", now=lambda: 1436367900.0, skew_threshold=30.0)
    assert s.check_clock("2015-07-08T15:05:10.000000Z") == []  # 10 s: within threshold
    first = s.check_clock("2015-07-08T15:06:00.000000Z")        # 60 s ahead
    assert [e["payload"]["skew_seconds"] for e in first] == [60.0]
    assert s.check_clock("2015-07-08T15:06:05.000000Z") == []  # same skew: not repeated
    assert s.check_clock("2015-07-08T15:04:00.000000Z")[0]["payload"]["skew_seconds"] == -60.0
    assert s.check_clock("2015-07-08T15:05:00.000000Z") == []
    assert len(s.check_clock("2015-07-08T15:06:00.000000Z")) == 1  # left the band again
    canonical(first)


def test_backoff_is_bounded_jittered_and_repeatable() -> None:
    a, b = Backoff(base=0.5, cap=4.0, seed=7), Backoff(base=0.5, cap=4.0, seed=7)
    da = [a.next() for _ in range(10)]
    assert da == [b.next() for _ in range(10)]
    assert all(0 < d <= 4.0 for d in da)
    assert da[-1] >= 2.0  # capped at 4 with at most 50 % jitter
    assert da[0] <= 0.5
    a.reset()
    assert a.next() <= 0.5


def test_the_follow_command_offers_exactly_the_runners_kinds() -> None:
    from kmevents.commands import follow
    from kmevents.sources.runner import KINDS

    assert follow.KINDS == KINDS
