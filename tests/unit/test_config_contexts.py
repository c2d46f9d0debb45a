"""The config file's named contexts (issue 18): pydantic-settings' own TOML/YAML sources, chosen by
--context, KMEVENTS_CONTEXT or current-context; KMEVENTS_* variables and flags still win."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmevents import config
from kmevents.cli import main
from kmevents.errors import UsageError
from kmevents.settings import load

TOML = """\
current-context = "prod"

[contexts.prod]
cluster = "prod-east"
[contexts.prod.kafka]
bootstrap = "kafka-1.prod:9093"
security_protocol = "SSL"
ssl_cafile = "/etc/kmevents/ca.pem"
[contexts.prod.etcd]
endpoint = "https://etcd.prod:2379"

[contexts.local]
cluster = "demo"
"""

YAML = """\
current-context: lab
contexts:
  lab:
    cluster: lab-1
    etcd:
      endpoint: http://etcd.lab:2379
"""


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(TOML)
    monkeypatch.setenv("KMEVENTS_CONFIG", str(p))
    for var in ("KMEVENTS_CONTEXT", "KMEVENTS_CLUSTER", "KMEVENTS_KAFKA__BOOTSTRAP", "KMEVENTS_ETCD__ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return p


def test_the_current_context_gives_kafka_etcd_tls_and_the_default_cluster(cfg: Path) -> None:
    s = load()
    assert s.cluster == "prod-east"
    assert s.kafka.bootstrap == "kafka-1.prod:9093" and s.kafka.security_protocol == "SSL"
    assert str(s.kafka.ssl_cafile) == "/etc/kmevents/ca.pem"
    assert s.etcd.endpoint == "https://etcd.prod:2379"


def test_environment_variables_win_over_the_context_and_keep_its_other_settings(
        cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEVENTS_KAFKA__BOOTSTRAP", "env-kafka:9092")
    s = load()
    assert s.kafka.bootstrap == "env-kafka:9092"
    assert s.kafka.security_protocol == "SSL"  # merged, not replaced


def test_flags_win_over_the_environment_and_the_context(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEVENTS_CLUSTER", "from-env")
    assert load({"cluster": "from-flag"}).cluster == "from-flag"
    assert load().cluster == "from-env"


def test_kmevents_context_and_the_context_flag_choose_another(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEVENTS_CONTEXT", "local")
    assert load().cluster == "demo" and load().etcd.endpoint == "http://127.0.0.1:2379"
    token = config.choose("prod")  # what --context does for a command's run
    try:
        assert load().cluster == "prod-east"
    finally:
        config.unchoose(token)


def test_an_unknown_context_is_refused_with_the_nearest(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEVENTS_CONTEXT", "lcoal")
    with pytest.raises(UsageError) as info:
        load()
    assert "did you mean 'local'?" in info.value.message and "local, prod" in (info.value.hint or "")


def test_a_misspelt_setting_in_a_context_is_refused_not_ignored(cfg: Path) -> None:
    cfg.write_text(TOML.replace("[contexts.prod.kafka]\nbootstrap", "[contexts.prod.kafka]\nbootstrp"))
    with pytest.raises(UsageError, match="unknown setting 'kafka.bootstrp'; did you mean 'kafka.bootstrap'"):
        load()


def test_a_yaml_config_file_works_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "config.yaml"
    p.write_text(YAML)
    monkeypatch.setenv("KMEVENTS_CONFIG", str(p))
    monkeypatch.delenv("KMEVENTS_CONTEXT", raising=False)
    s = load()
    assert s.cluster == "lab-1" and s.etcd.endpoint == "http://etcd.lab:2379"


def test_no_file_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEVENTS_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("KMEVENTS_CONTEXT", raising=False)
    assert load().etcd.endpoint == "http://127.0.0.1:2379"


def test_config_commands_list_use_and_view_contexts(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "get-contexts"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["CURRENT", "NAME", "CLUSTER", "KAFKA", "ETCD"]
    assert rows[1].split()[:2] == ["*", "prod"] and rows[2].split()[0] == "local"
    assert main(["config", "use-context", "local"]) == 0
    assert 'current-context = "local"' in cfg.read_text() and "[contexts.prod.kafka]" in cfg.read_text()
    assert load().cluster == "demo"
    assert main(["config", "use-context", "nope"]) == 2
    capsys.readouterr()
    assert main(["--context", "prod", "config", "view"]) == 0
    out = capsys.readouterr().out
    assert "context in use: prod (from --context)" in out and "cluster=prod-east" in out


# -- settings deferred by the reading commands (commands/_common.settings_from(defer=True)) --

def test_the_fields_the_deferral_looks_for_are_the_settings_fields() -> None:
    from kmevents.commands._common import SETTINGS_FIELDS
    from kmevents.settings import Settings

    assert set(SETTINGS_FIELDS) == set(Settings.model_fields)


def test_settings_are_deferred_only_when_nothing_could_change_their_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from kmevents.commands._common import DeferredSettings, only_defaults, settings_from

    for var in [v for v in __import__("os").environ if v.upper().startswith("KMEVENTS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("KMEVENTS_CONFIG", str(tmp_path / "config.toml"))  # not there
    monkeypatch.setenv("KMEVENTS_TZ", "UTC")  # not a setting of Settings
    args = argparse.Namespace(cluster="c9", bootstrap=None, etcd=None)
    assert only_defaults({"cluster": "c9", "etcd.endpoint": None})
    deferred = settings_from(args, defer=True)
    assert type(deferred) is DeferredSettings
    assert deferred.cluster == "c9" and deferred.model_dump() == load({"cluster": "c9"}).model_dump()
    assert not only_defaults({"etcd.endpoint": "http://e:1"})  # a flag: checked now
    for var in ("KMEVENTS_CLUSTER", "kmevents_etcd__endpoint", "KMEVENTS_API", "KMEVENTS_CONTEXT"):
        with monkeypatch.context() as m:
            m.setenv(var, "x")
            assert not only_defaults({}), var  # a variable of a setting: read (and checked) now
    with monkeypatch.context() as m:
        m.setenv("KMEVENTS_CLUSTER", "from-env")
        assert settings_from(argparse.Namespace(), defer=True).cluster == "from-env"
    (tmp_path / "config.toml").write_text("")
    assert not only_defaults({})  # a config file: read (and checked) now
    (tmp_path / "config.toml").unlink()
    token = config.choose("lab")
    try:
        assert not only_defaults({})  # --context
    finally:
        config.unchoose(token)
    assert only_defaults({})


def test_a_setting_that_does_not_validate_is_refused_by_where_it_came_from_not_as_a_bug(
        cfg: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad value is a usage error (exit 2) naming the variable, the flag or the config file's
    setting and why, not "internal error ... (a bug)" with pydantic's text; never its value."""
    monkeypatch.setenv("kmevents_kafka__partitions", "s3cret-abc")  # (names are read in any case)
    assert main(["clusters"]) == 2
    err = capsys.readouterr().err
    assert "bad setting kmevents_kafka__partitions: Input should be a valid integer" in err
    assert "internal error" not in err and "s3cret" not in err and "pydantic" not in err
    monkeypatch.delenv("kmevents_kafka__partitions")

    with pytest.raises(UsageError, match=r"etcd\.endpoint \(from a flag\): etcd endpoint needs a scheme"):
        load({"etcd.endpoint": "etcd.prod:2379"})

    # a section's variable as JSON: named by the setting (no config file there to blame)
    with monkeypatch.context() as m:
        m.setenv("KMEVENTS_CONFIG", str(cfg.parent / "none.toml"))
        m.setenv("KMEVENTS_KAFKA", '{"partitions": "x"}')
        with pytest.raises(UsageError, match=r"^bad setting kafka\.partitions: Input should be a valid integer"):
            load()

    cfg.write_text(TOML.replace('security_protocol = "SSL"', 'security_protocol = "SSL"\npartitions = "many"'))
    with pytest.raises(UsageError, match=rf"kafka\.partitions \(the config file's context, {cfg}\): Input should be"):
        load()
    # the reading commands check them before opening any source, as before
    assert main(["state", "--cluster", "x", "--source", str(cfg.parent / "none.kmarch")]) == 2
    assert "bad setting kafka.partitions" in capsys.readouterr().err
