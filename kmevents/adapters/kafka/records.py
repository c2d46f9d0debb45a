"""One stored record as the partition readers hand it to replay: :class:`LogRecord`.

aiokafka makes a ``ConsumerRecord`` of eleven fields for every record it unpacks, and replay
then made a LogRecord of four of them: ~9 µs a record in all on the slower test machine, a
tenth of a point-in-time read's 4,000 records after a delta. A reader asked to
(:meth:`PartitionReader.lighten`) has aiokafka make the LogRecord itself from the fetch's
record (aiokafka's ``PartitionRecords._consumer_record``, 0.14; its CRC check, control
batches and positions are aiokafka's as before): 24 against 36 ms for 4,000 records
(BENCHMARKS.md, "A read's records made once").
"""

from __future__ import annotations

from typing import Any


class LogRecord:
    """``offset``, ``timestamp`` (ms, log-append), ``key``, ``value``: the stored record, and its
    ``headers`` (``(name, bytes)`` pairs; ``()`` when none, or when not read). Equal when the
    first four are."""

    __slots__ = ("offset", "timestamp", "key", "value", "headers")

    def __init__(self, offset: int, timestamp: int, key: bytes | None, value: bytes | None,
                 headers: Any = ()) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogRecord) and (self.offset, self.timestamp, self.key, self.value) == (
            other.offset, other.timestamp, other.key, other.value)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LogRecord(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, {len(self.value or b'')} B)"


def log_record(_tp: Any, record: Any) -> LogRecord:
    """aiokafka's ``PartitionRecords._consumer_record`` for a light reader: the fetch's record
    (its C ``DefaultRecord``) as a LogRecord, its headers kept only when it has some."""
    return LogRecord(record.offset, record.timestamp, record.key, record.value, record.headers or ())
