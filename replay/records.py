"""One stored record of the log, as replay sees it.

``offset`` is always the record's **original** offset in its cluster's
partition of the events topic, and ``timestamp`` its original log-append time
(ms): an archive keeps both, and a topic filled by ``kmevents archive import``
carries them in a header (``kmevents-origin: <partition>:<offset>:<timestamp>``)
because the new topic gives the same bytes new offsets and times. ``key`` and
``value`` are the bytes exactly as first stored, so the hash chain over them
continues unchanged (DESIGN.md rule 6).
"""

from __future__ import annotations

from typing import Any

ORIGIN_HEADER = "kmevents-origin"


class LogRecord:
    """``offset``, ``timestamp`` (ms, log-append), ``key``, ``value``: the stored record."""

    __slots__ = ("offset", "timestamp", "key", "value")

    def __init__(self, offset: int, timestamp: int, key: bytes | None, value: bytes | None) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogRecord) and (self.offset, self.timestamp, self.key, self.value) == (
            other.offset, other.timestamp, other.key, other.value)

    def __repr__(self) -> str:
        return f"LogRecord(offset={self.offset}, timestamp={self.timestamp}, key={self.key!r}, {len(self.value or b'')} B)"


def origin_header(partition: int, offset: int, timestamp: int) -> tuple[str, bytes]:
    return ORIGIN_HEADER, f"{partition}:{offset}:{timestamp}".encode()


def from_kafka(rec: Any) -> LogRecord:
    """A LogRecord of an aiokafka ConsumerRecord, honouring an import's origin header."""
    for name, val in rec.headers or ():
        if name == ORIGIN_HEADER:
            _p, o, t = val.decode().split(":")
            return LogRecord(int(o), int(t), rec.key, rec.value)
    return LogRecord(rec.offset, rec.timestamp, rec.key, rec.value)
