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
    assert "--enable-v2=true" in etcd_args  # k8sm's leader key is a v2 key


def test_compose_creates_every_topic_with_the_native_settings() -> None:
    script = _compose()["services"]["topics"]["command"][0]
    lines = {m.group(1): line for line in script.splitlines() if (m := re.search(r"--topic (\S+)", line))}
    for spec in topic_specs(Settings().kafka):
        assert spec.name in lines, f"compose.yaml does not create {spec.name}"
        line = lines[spec.name]
        assert f"--partitions {spec.partitions} " in line
        for key, value in spec.configs.items():
            assert f"--config {key}={value}" in line, f"{spec.name}: {key}={value} differs"


def test_compose_runs_the_processor_and_the_api_from_the_kmevents_image_on_loopback() -> None:
    c = _compose()["services"]
    s = Settings()
    proc, api = c["processor"], c["api"]
    assert proc["build"]["context"] == "." and "BASE" in proc["build"]["args"]
    assert proc["image"] == api["image"] and proc["image"].startswith("kmevents-local/"), "a local name, never official"
    assert proc["command"][0] == "process" and api["command"][0] == "api"
    assert api["command"][api["command"].index("--host") + 1] == "127.0.0.1"
    for svc in (proc, api):
        assert svc["network_mode"] == "host"
        assert svc["environment"]["KMEVENTS_KAFKA__BOOTSTRAP"] == f"127.0.0.1:{s.stack.kafka_port}"
        assert svc["environment"]["KMEVENTS_ETCD__ENDPOINT"] == f"http://127.0.0.1:{s.stack.etcd_port}"
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_dockerfile_takes_its_base_as_a_build_arg_and_copies_every_package_folder() -> None:
    import tomllib

    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0].startswith("ARG BASE=") and lines[1] == "FROM ${BASE}"
    folders = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    for folder in folders:
        assert f"COPY {folder} ./{folder}" in text, f"the image lacks {folder}/"
    assert "USER 65534" in text and 'ENTRYPOINT ["kmevents"]' in text
