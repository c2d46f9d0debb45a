"""The adapters' public faces: the Kafka package's curated API, its protocols against aiokafka
itself, and what every Faust app is built with."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import aiokafka
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder as AiokafkaBatchBuilder
from aiokafka.structs import ConsumerRecord as AiokafkaConsumerRecord
from aiokafka.structs import RecordMetadata as AiokafkaRecordMetadata

from kmevents.adapters import faust as faust_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_kafka_api_lists_each_name_once_and_every_name_exists() -> None:
    assert len(set(kafka_adapter.__all__)) == len(kafka_adapter.__all__)
    for name in kafka_adapter.__all__:
        assert hasattr(kafka_adapter, name), name


def test_every_name_the_tree_uses_of_the_kafka_adapter_is_in_its_public_api() -> None:
    used: dict[str, str] = {}
    for folder in ("kmevents", "processors", "replay", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            where = str(path.relative_to(ROOT))
            if where.startswith("kmevents/adapters/"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "kafka_adapter" and node.attr != "__all__"):
                    used.setdefault(node.attr, where)
                elif isinstance(node, ast.ImportFrom) and node.module == "kmevents.adapters.kafka":
                    for alias in node.names:
                        used.setdefault(alias.name, where)
    assert {"producer", "consumer", "PartitionReader", "topic_specs"} <= set(used)  # the scan sees them
    missing = {name: where for name, where in used.items() if name not in kafka_adapter.__all__}
    assert not missing, f"used but not exported by kmevents.adapters.kafka: {missing}"


def _methods(protocol: type) -> dict[str, inspect.Signature]:
    out: dict[str, inspect.Signature] = {}
    for klass in reversed(protocol.__mro__):
        if klass.__module__ != "kmevents.adapters.kafka.clients":
            continue
        for name, member in vars(klass).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                out[name] = inspect.signature(member)
    return out


@pytest.mark.parametrize(("protocol", "implementation"), [
    (kafka_adapter.Producer, aiokafka.AIOKafkaProducer),
    (kafka_adapter.GroupConsumer, aiokafka.AIOKafkaConsumer),
    (kafka_adapter.BatchBuilder, AiokafkaBatchBuilder),
])
def test_every_call_a_kafka_protocol_promises_exists_on_aiokafka_with_its_parameters(
        protocol: type, implementation: type) -> None:
    methods = _methods(protocol)
    assert methods, protocol
    for name, promised in methods.items():
        real = getattr(implementation, name, None)
        assert real is not None, f"aiokafka's {implementation.__name__} has no {name}()"
        actual = inspect.signature(real).parameters
        for param in promised.parameters.values():
            if param.kind is param.VAR_POSITIONAL:
                assert any(p.kind is p.VAR_POSITIONAL for p in actual.values()), (name, param.name)
            else:
                assert param.name in actual, f"{implementation.__name__}.{name}() has no parameter {param.name}"
        assert inspect.iscoroutinefunction(real) == inspect.iscoroutinefunction(getattr(protocol, name)), name


def test_the_record_protocols_name_fields_aiokafka_records_have() -> None:
    record_fields = {f.name for f in dataclasses.fields(AiokafkaConsumerRecord)}
    assert set(kafka_adapter.ConsumerRecord.__annotations__) <= record_fields
    metadata = {n for n, v in vars(kafka_adapter.RecordMetadata).items() if isinstance(v, property)}
    assert metadata and metadata <= set(AiokafkaRecordMetadata._fields)
    assert tuple(kafka_adapter.TopicPartition._fields) == ("topic", "partition")


def test_the_rebalance_listener_is_what_aiokafka_subscribes() -> None:
    class Listener(kafka_adapter.ConsumerRebalanceListener):
        pass

    assert isinstance(Listener(), aiokafka.ConsumerRebalanceListener)  # no abstract method left


def test_a_faust_app_serves_on_loopback_only_and_gets_its_data_directory_with_parents(tmp_path: Path) -> None:
    datadir = tmp_path / "not-yet" / "faust"
    app = faust_adapter.make_app("kmevents-test", KafkaSettings(bootstrap="127.0.0.1:1,127.0.0.1:2"),
                                 datadir=datadir, web_port=7001, default_web_port=6066, topic_partitions=3)
    assert datadir.is_dir()
    assert app.conf.web_bind == "127.0.0.1" and app.conf.web_host == "127.0.0.1"
    assert app.conf.web_enabled and app.conf.web_port == 7001
    assert [str(u) for u in app.conf.broker] == ["kafka://127.0.0.1:1", "kafka://127.0.0.1:2"]
    assert app.conf.topic_partitions == 3
    off = faust_adapter.make_app("kmevents-test-off", KafkaSettings(), datadir=datadir, web_port=0,
                                 default_web_port=6066)
    assert not off.conf.web_enabled
