"""One stored record of the log, as replay sees it (a ``LogRecord``, kmevents/records.py:
Kafka's readers make them straight from a fetch when asked, archives make them too).

``offset`` is always the record's **original** offset in its cluster's
partition of the events topic, and ``timestamp`` its original log-append time
(ms): an archive keeps both, and a topic filled by ``kmevents archive import``
carries them in a header (``kmevents-origin: <partition>:<offset>:<timestamp>``)
because the new topic gives the same bytes new offsets and times. ``key`` and
``value`` are the bytes exactly as first stored, so the hash chain over them
continues unchanged (DESIGN.md rule 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kmevents.records import LogRecord

if TYPE_CHECKING:
    from kmevents.adapters.kafka import ConsumerRecord

__all__ = ["ORIGIN_HEADER", "LogRecord", "from_kafka", "origin_header", "origin_of"]

#: The header ``kmevents archive import`` puts on each record it writes: the record's
#: ``<partition>:<offset>:<timestamp>`` in the log it was exported from, so readers
#: see (and dedupe by) the original offset. Its one definition.
ORIGIN_HEADER = "kmevents-origin"


def origin_header(partition: int, offset: int, timestamp: int) -> tuple[str, bytes]:
    return ORIGIN_HEADER, f"{partition}:{offset}:{timestamp}".encode()


def origin_of(rec: ConsumerRecord | LogRecord) -> tuple[int, int, int] | None:
    """``(partition, offset, timestamp)`` of ``rec`` in the log it was exported from; None when
    it was never imported (no :data:`ORIGIN_HEADER`)."""
    for name, val in rec.headers or ():
        if name == ORIGIN_HEADER:
            p, o, t = val.decode().split(":")
            return int(p), int(o), int(t)
    return None


def from_kafka(rec: ConsumerRecord | LogRecord) -> LogRecord:
    """A LogRecord of a consumed record, honouring an import's origin header."""
    found = origin_of(rec)
    if found is not None:
        return LogRecord(found[1], found[2], rec.key, rec.value)
    if type(rec) is LogRecord:
        return rec
    return LogRecord(rec.offset, rec.timestamp, rec.key, rec.value)
