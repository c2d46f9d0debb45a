"""Kafka for kmevents: the only package that imports aiokafka.

Every other module asks this adapter for a producer, a consumer, a read of a
partition or an admin answer, so the transport's quirks stay here. Use it as
``from kmevents.adapters import kafka as kafka_adapter``; the names below are
the whole public API (a test checks that every ``kafka_adapter.X`` in the tree
is one of them).

    clients.py   connection options; producer() and consumer(); the protocols
                 typing what callers use of them (Producer, BatchProducer,
                 Consumer, GroupConsumer, ConsumerRecord, RecordMetadata,
                 BatchBuilder), TopicPartition, the rebalance listener base,
                 the error classes
    topics.py    the project's topics (TopicSpec, topic_specs), creating and
                 describing them
    cluster.py   health, waiting for the group coordinator, a group's members
    reader.py    reading a partition by offsets without a group
                 (PartitionReader, iter_range, read_range, partition_bounds,
                 offset_for_time, end_offsets)
"""

from __future__ import annotations

from kmevents.adapters.kafka.clients import (
    LOG_APPEND_TIME,
    AppendedRecord,
    BatchBuilder,
    BatchProducer,
    Consumer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    CorruptRecordException,
    GroupConsumer,
    KafkaConnectionError,
    KafkaError,
    OffsetAndTimestamp,
    Producer,
    RecordMetadata,
    TopicPartition,
    client_options,
    consumer,
    producer,
)
from kmevents.adapters.kafka.cluster import group_assignment, healthy, wait_group_coordinator
from kmevents.adapters.kafka.reader import (
    PartitionReader,
    damaged_batch,
    end_offsets,
    iter_range,
    offset_for_time,
    partition_bounds,
    read_range,
)
from kmevents.adapters.kafka.topics import TopicSpec, describe_topics, ensure_topics, topic_specs

__all__ = [
    "LOG_APPEND_TIME",
    "AppendedRecord",
    "BatchBuilder",
    "BatchProducer",
    "Consumer",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "CorruptRecordException",
    "GroupConsumer",
    "KafkaConnectionError",
    "KafkaError",
    "OffsetAndTimestamp",
    "PartitionReader",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "client_options",
    "consumer",
    "damaged_batch",
    "describe_topics",
    "end_offsets",
    "ensure_topics",
    "group_assignment",
    "healthy",
    "iter_range",
    "offset_for_time",
    "partition_bounds",
    "producer",
    "read_range",
    "topic_specs",
    "wait_group_coordinator",
]
