"""One stored record of the log as the readers hand it to a fold: :class:`LogRecord`.

Kafka's partition readers make them (``kafka_adapter.PartitionReader.lighten``: aiokafka
builds one straight from the fetch, not its eleven-field ``ConsumerRecord`` first, which replay
then copied into a LogRecord: ~9 µs a record in all on the slower test machine, 36 against
24 ms for a point-in-time read's 4,000 records; BENCHMARKS.md, "A read's records made once");
archives make them too. Here, not in the adapter, so that reading an archive imports no Kafka
client.
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
