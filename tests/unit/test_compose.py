"""compose.yaml runs the same stack as `kmevents stack up`: same ports, same topic settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kmevents.adapters.kafka import topic_specs
from kmevents.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_parses_and_runs_kafka_and_etcd_on_loopback() -> None:
    c = _compose()
    assert {"kafka", "etcd", "topics"} <= set(c["services"])
    for svc in c["services"].values():
        assert svc.get("network_mode") == "host"
    assert c["services"]["kafka"]["image"].startswith("apache/kafka:3.9.")
    tag = c["services"]["etcd"]["image"].rsplit(":v", 1)[1]
    assert tuple(map(int, tag.split("."))) >= (3, 5, 6), "etcd 3.5.6 or later (3.5.0-3.5.2 are unsafe)"


def test_compose_ports_match_the_native_stack() -> None:
    s = Settings()
    env = _compose()["services"]["kafka"]["environment"]
    assert f"127.0.0.1:{s.stack.kafka_port}" in env["KAFKA_LISTENERS"]
    assert f"127.0.0.1:{s.stack.kafka_controller_port}" in env["KAFKA_LISTENERS"]
    etcd_args = " ".join(_compose()["services"]["etcd"]["command"])
    assert f"--listen-client-urls=http://127.0.0.1:{s.stack.etcd_port}" in etcd_args
    assert f"--max-txn-ops={s.etcd.max_txn_ops}" in etcd_args
    assert f"--max-request-bytes={s.etcd.max_request_bytes}" in etcd_args
    assert "--auto-compaction-mode=periodic" in etcd_args


def test_compose_creates_every_topic_with_the_native_settings() -> None:
    script = _compose()["services"]["topics"]["command"][0]
    lines = {m.group(1): line for line in script.splitlines() if (m := re.search(r"--topic (\S+)", line))}
    for spec in topic_specs(Settings().kafka):
        assert spec.name in lines, f"compose.yaml does not create {spec.name}"
        line = lines[spec.name]
        assert f"--partitions {spec.partitions} " in line
        for key, value in spec.configs.items():
            assert f"--config {key}={value}" in line, f"{spec.name}: {key}={value} differs"
