"""Flags and output shared by the commands: settings overrides, ``--format``, logging."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # pydantic is imported where settings are loaded: the parser of every command imports this module
    from kmevents.settings import Settings


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    """``--bootstrap`` and ``--etcd`` (default: the local stack, or KMEVENTS_* variables)."""
    g = p.add_argument_group("connection (default: KMEVENTS_* variables, else the local stack)")
    g.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    g.add_argument("--etcd", metavar="URL", help="etcd endpoint, e.g. http://127.0.0.1:2379")
    g.add_argument("--context", metavar="NAME", help="the config file's context (kmevents config get-contexts)")


def add_format_flag(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "json")) -> None:
    p.add_argument("--format", choices=choices, default=choices[0],
                   help=f"output format (default {choices[0]}; json is for machines)")


def check_output(path: str, flag: str = "-o") -> None:
    """Refuse an output file that cannot be written, before any work is done (a 20 s replay
    that ends in a traceback about a missing folder helps nobody). Nothing is created."""
    import os
    from pathlib import Path

    from kmevents.errors import UsageError

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder", hint="give a file name inside it")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist", hint=f"create it first: mkdir -p {parent}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{flag} {path}: not writable", hint="choose a file in a folder you may write")


def require_backends(settings: Settings, *, kafka: bool = True, etcd: bool = True, timeout: float = 5.0) -> None:
    """A daemon's first step: Kafka and etcd answer, or one line says which does not (exit 2),
    instead of a client's traceback from deep inside its start."""
    import asyncio

    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.errors import EnvironmentProblem

    down = []
    if kafka and not asyncio.run(kafka_adapter.healthy(settings.kafka, timeout=timeout)):
        down.append(f"Kafka at {settings.kafka.bootstrap}")
    if etcd and etcd_adapter.health_detail(settings.etcd, timeout=timeout).get("health") in (False, "false"):
        down.append(f"etcd at {settings.etcd.endpoint}")
    if down:
        raise EnvironmentProblem(f"{' and '.join(down)} {'does' if len(down) == 1 else 'do'} not answer",
                                 hint="start the stack (`kmevents stack up`; `kmevents stack status` says what runs), "
                                      "or point --bootstrap/--etcd (KMEVENTS_KAFKA__BOOTSTRAP, "
                                      "KMEVENTS_ETCD__ENDPOINT) at yours")


def settings_from(args: argparse.Namespace, *, defer: bool = False, **extra: Any) -> Settings:
    """The settings of a command: flags (``--bootstrap``, ``--etcd``, ``--cluster``, ``extra``) over
    ``KMEVENTS_*`` over the config file's context (``kmevents.settings.load``).

    ``defer``: when nothing could make them other than their defaults (:func:`only_defaults`), they
    are built, with pydantic, at their first use instead (:class:`DeferredSettings`): an archive
    read that never connects never imports pydantic (~15 MiB of a process that folds a whole log).
    Otherwise they are built and checked now, so a bad variable or config file is refused before
    any source is opened, as without ``defer``."""
    overrides: dict[str, Any] = {
        "kafka.bootstrap": getattr(args, "bootstrap", None),
        "etcd.endpoint": getattr(args, "etcd", None),
        "cluster": getattr(args, "cluster", None),
        **extra,
    }
    if defer and only_defaults(overrides):
        return cast("Settings", DeferredSettings(overrides))
    from kmevents.settings import load

    return load(overrides)


#: The fields of ``kmevents.settings.Settings`` (a test holds the two equal): pydantic-settings reads
#: ``KMEVENTS_<FIELD>`` and ``KMEVENTS_<FIELD>__...`` variables, whatever their case, and no others.
SETTINGS_FIELDS: tuple[str, ...] = ("cluster", "kafka", "etcd", "stack", "api", "monitor", "ingest", "redact",
                                    "log_format")


def only_defaults(overrides: dict[str, Any]) -> bool:
    """Whether ``load(overrides)`` is sure to give the defaults with ``overrides``' cluster, and so
    cannot fail: no other flag given, no ``KMEVENTS_*`` variable of a setting set (a name starting
    with a field's counts), no config file, no context chosen (``--context``, ``KMEVENTS_CONTEXT``)."""
    import os

    from kmevents import config

    if any(v is not None for k, v in overrides.items() if k != "cluster"):
        return False
    for name in os.environ:
        low = name.lower()
        if low.startswith("kmevents_") and low[len("kmevents_"):].startswith(SETTINGS_FIELDS):
            return False
    return (config.chosen() is None and not os.environ.get(config.CONTEXT_ENV)
            and not config.config_path().exists())


class DeferredSettings:
    """Stands for ``load(overrides)`` when :func:`only_defaults` holds: loads it at the first
    attribute read, then answers from it."""

    def __init__(self, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        self._loaded: Settings | None = None

    def __getattr__(self, name: str) -> Any:
        if self._loaded is None:
            from kmevents.settings import load

            self._loaded = load(self._overrides)
        return getattr(self._loaded, name)


def emit_json(obj: Any) -> None:
    """``--format json`` output: indented, keys sorted, UTF-8 (not ``\\uXXXX`` escapes).

    orjson, because a whole state is tens of MB (``json.dumps``: seconds); the
    standard library only for what orjson refuses (an integer beyond 64 bits).
    """
    import orjson

    try:
        data = orjson.dumps(obj, default=str,
                            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        data = json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False).encode()
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text-only stream (redirect_stdout to a StringIO)
        sys.stdout.write(data.decode() + "\n")
        return
    sys.stdout.flush()
    out.write(data + b"\n")
    out.flush()


_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def log_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields a log call gave (partition, offset, error, ...)."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(log_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextLogFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: the ``extra`` fields are part of the line
    (a dead letter without its offset and reason says nothing)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = log_extras(record)
        if not extras:
            return line
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in extras.items())
        head, nl, rest = line.partition("\n")  # a traceback stays below the line
        return f"{head} {pairs}{nl}{rest}"


def _text_value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def setup_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Structured logs on stderr: JSON lines with KMEVENTS_LOG_FORMAT=json, else key=value text."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(TextLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "faust", "mode", "grpc", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
