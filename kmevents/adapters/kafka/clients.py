"""Kafka clients: the connection options, the producer and consumer factories, and their types.

aiokafka ships no type hints, so what kmevents calls on its objects is written
down here as protocols (:class:`Producer`, :class:`BatchProducer`,
:class:`Consumer`, :class:`GroupConsumer`, :class:`ConsumerRecord`,
:class:`RecordMetadata`, :class:`BatchBuilder`). The factories return them, so
a caller's use of a client is type-checked and names only what it needs; a
method missing here is a method nobody outside the adapter calls.

The transport's quirks:

- ``ConsumerRecord.timestamp`` is milliseconds; ``timestamp_type ==
  LOG_APPEND_TIME`` means the broker's clock, which is what every kmevents
  topic uses (``recorded_at``).
- A rebalance listener's callbacks may be coroutines; aiokafka awaits them,
  and only logs what they raise.
- aiokafka's transactional requests are version 0 only; kmevents needs none:
  the exactly-once effect lives in etcd (DESIGN.md rule 3).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CorruptRecordException as CorruptRecordException  # re-exported
from aiokafka.errors import KafkaConnectionError as KafkaConnectionError  # re-exported
from aiokafka.errors import KafkaError as KafkaError  # re-exported

from kmevents.settings import KafkaSettings

if TYPE_CHECKING:

    class TopicPartition(NamedTuple):
        """A topic and one of its partitions (aiokafka's ``TopicPartition``; a hashable tuple)."""

        topic: str
        partition: int

    class OffsetAndTimestamp(NamedTuple):
        """The first offset at or after a time, and that record's timestamp (ms)."""

        offset: int
        timestamp: int | None

else:
    from aiokafka import TopicPartition as TopicPartition  # re-exported
    from aiokafka.structs import OffsetAndTimestamp as OffsetAndTimestamp  # re-exported

#: LogAppendTime in ``ConsumerRecord.timestamp_type``.
LOG_APPEND_TIME = 1


# -- values ------------------------------------------------------------------

class ConsumerRecord(Protocol):
    """One record of a partition as a consumer returns it."""

    topic: str
    partition: int
    offset: int
    #: milliseconds since the epoch; the broker's clock when ``timestamp_type == LOG_APPEND_TIME``
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class RecordMetadata(Protocol):
    """Where the broker stored a produced record (the first one, for a batch)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class AppendedRecord(Protocol):
    """A record appended to a :class:`BatchBuilder`: its place in the batch and its size."""

    @property
    def offset(self) -> int:
        """Relative to the batch: the record's offset in the log is the batch's base offset plus this."""
        ...

    @property
    def size(self) -> int: ...


class BatchBuilder(Protocol):
    """A record batch filled by the caller and sent whole (:meth:`BatchProducer.send_batch`)."""

    def append(self, *, timestamp: int | None, key: bytes | None, value: bytes | None,
               headers: Sequence[tuple[str, bytes]] = ...) -> AppendedRecord | None:
        """Add one record; None when the batch is full (or closed) and the record was not added."""
        ...

    def close(self) -> None:
        """No more records: the batch goes out as it is, without waiting for more (no linger)."""
        ...


# -- clients -------------------------------------------------------------------

class BatchProducer(Protocol):
    """A producer the caller hands whole record batches to (``ingest.outbox``)."""

    def create_batch(self) -> BatchBuilder: ...

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[RecordMetadata]:
        """Enqueue ``batch``; the future is done when the broker acknowledged (or refused) it."""
        ...


class Producer(BatchProducer, Protocol):
    """A producer; ``start()`` connects, ``stop()`` flushes and disconnects."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def flush(self) -> None: ...

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> asyncio.Future[RecordMetadata]:
        """Enqueue one record; the future is done when the broker acknowledged (or refused) it."""
        ...

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                            partition: int | None = None, timestamp_ms: int | None = None,
                            headers: Sequence[tuple[str, bytes]] | None = None) -> RecordMetadata: ...

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition ids (waits for its metadata)."""
        ...


class Consumer(Protocol):
    """A consumer of partitions it was given (``assign``); positions are the caller's to keep.

    ``start()`` connects, ``stop()`` disconnects. Without a group (``group_id=None``)
    nothing is committed anywhere.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, partitions: Iterable[TopicPartition]) -> None: ...

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """From metadata already fetched (``start()`` fetches a subscribed topic's); None when unknown."""
        ...

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """The next fetch of ``partition`` starts at ``offset``."""
        ...

    async def seek_to_end(self, *partitions: TopicPartition) -> None: ...

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record to be fetched."""
        ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end as the last fetch answered it; None before any fetch."""
        ...

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def offsets_for_times(self, timestamps: Mapping[TopicPartition, int]
                                ) -> dict[TopicPartition, OffsetAndTimestamp | None]: ...

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records fetched since the last call, by partition (of ``partitions``, or all); waits
        up to ``timeout_ms`` when there are none."""
        ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def paused(self) -> set[TopicPartition]: ...


class GroupConsumer(Consumer, Protocol):
    """A consumer in a consumer group: the group assigns the partitions of the topics it subscribes."""

    def subscribe(self, topics: Iterable[str] = (), pattern: str | None = None,
                  listener: ConsumerRebalanceListener | None = None) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions the group gave this consumer."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Store the group's committed offsets (``offset`` is the next record to read)."""
        ...


class ConsumerRebalanceListener(aiokafka.ConsumerRebalanceListener):
    """What a group consumer calls when the group moves partitions (subclass it; ``subscribe(listener=)``).

    Every revocation reaches every member before any assignment does. What the
    callbacks raise is only logged by the consumer: a subclass that must stop on
    a failure has to catch it and stop itself.
    """

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Called before a rebalance, once fetching stopped; not called by ``stop()``."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Called after a rebalance, before fetching resumes (may include partitions held before)."""


# -- factories -----------------------------------------------------------------

def client_options(k: KafkaSettings) -> dict[str, Any]:
    """Connection and security keyword arguments shared by every aiokafka client."""
    opts: dict[str, Any] = {"bootstrap_servers": k.bootstrap, "security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
        if k.ssl_certfile:
            ctx.load_cert_chain(str(k.ssl_certfile), str(k.ssl_keyfile) if k.ssl_keyfile else None)
        opts["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = k.sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = k.sasl_username
        opts["sasl_plain_password"] = k.sasl_password.get_secret_value() if k.sasl_password else None
    return opts


def producer(k: KafkaSettings, **kwargs: Any) -> Producer:
    """An idempotent producer (``acks=all``); call ``await p.start()`` before use."""
    opts = {
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        **client_options(k),
        **kwargs,
    }
    p: Producer = AIOKafkaProducer(**opts)
    return p


def consumer(k: KafkaSettings, *topics: str, **kwargs: Any) -> GroupConsumer:
    """A consumer with auto-commit off (positions are owned by etcd checkpoints).

    In a group when ``group_id`` is given; ``group_id=None`` for one that is
    ``assign``-ed partitions.
    """
    opts = {"enable_auto_commit": False, "auto_offset_reset": "earliest", "check_crcs": k.check_crcs,
            **client_options(k), **kwargs}
    c: GroupConsumer = AIOKafkaConsumer(*topics, **opts)
    return c


def admin(k: KafkaSettings, **kwargs: Any) -> Any:
    """An admin client (for the adapter's own topic and group requests); ``start()``, then ``close()``."""
    return AIOKafkaAdminClient(**client_options(k), **kwargs)
