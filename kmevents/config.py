"""The config file: named contexts (Kafka, etcd, TLS, the default cluster), like a kubeconfig.

``~/.kmevents/config.toml`` (or ``config.yaml``; ``KMEVENTS_CONFIG=PATH`` names another)::

    current-context = "prod"

    [contexts.prod]
    cluster = "prod-east"                    # the default --cluster
    [contexts.prod.kafka]
    bootstrap = "kafka-1.prod:9093,kafka-2.prod:9093"
    security_protocol = "SSL"
    ssl_cafile = "/etc/kmevents/ca.pem"
    [contexts.prod.etcd]
    endpoint = "https://etcd.prod:2379"
    ca_cert = "/etc/kmevents/ca.pem"

    [contexts.local]
    cluster = "demo"

A context holds any settings (``kmevents.settings.Settings``: ``cluster``, ``kafka``,
``etcd``, ``api``, ``monitor`` ...), spelled as their ``KMEVENTS_*`` variables are,
lower-case and nested. The context used is the first of: ``--context NAME``,
``KMEVENTS_CONTEXT``, the file's ``current-context``; none means the file adds nothing.

Precedence, highest first: flags > ``KMEVENTS_*`` variables > the context > defaults.
The file is read by pydantic-settings' own file sources (``TomlConfigSettingsSource``,
``YamlConfigSettingsSource``) and merged by pydantic-settings like any other source, so
``KMEVENTS_KAFKA__BOOTSTRAP`` overrides the context's bootstrap and keeps its TLS files.

A name the settings do not have (``kafak``, ``kafka.bootstrp``) is refused with the
nearest name: a typo in a context must not silently fall back to the local stack.
"""

from __future__ import annotations

import contextvars
import difflib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmevents.errors import UsageError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

CONFIG_ENV = "KMEVENTS_CONFIG"
CONTEXT_ENV = "KMEVENTS_CONTEXT"
DEFAULT_DIR = Path.home() / ".kmevents"

#: ``--context NAME`` of the running command (set by the CLI for its run).
_CHOSEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("kmevents_context", default=None)


def config_path() -> Path:
    """``KMEVENTS_CONFIG``, else ``~/.kmevents/config.toml`` (``config.yaml`` when only that exists)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    toml = DEFAULT_DIR / "config.toml"
    for alt in (DEFAULT_DIR / "config.yaml", DEFAULT_DIR / "config.yml"):
        if not toml.exists() and alt.exists():
            return alt
    return toml


def is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def choose(name: str | None) -> contextvars.Token[str | None]:
    """Use context ``name`` (``--context``) for settings loaded from now on in this run."""
    return _CHOSEN.set(name)


def unchoose(token: contextvars.Token[str | None]) -> None:
    _CHOSEN.reset(token)


def chosen() -> str | None:
    """The context ``--context`` chose for this run (None: none given)."""
    return _CHOSEN.get()


def read(settings_cls: type[BaseSettings], path: Path | None = None) -> dict[str, Any]:
    """The whole file as data, through pydantic-settings' file sources ({} when absent)."""
    from pydantic_settings import TomlConfigSettingsSource, YamlConfigSettingsSource

    p = path or config_path()
    if not p.exists():
        return {}
    try:
        if is_yaml(p):
            data: Any = YamlConfigSettingsSource(settings_cls, yaml_file=p).yaml_data
        else:
            data = TomlConfigSettingsSource(settings_cls, toml_file=p).toml_data
    except Exception as exc:  # noqa: BLE001 - a syntax error of either parser
        raise UsageError(f"config file {p} cannot be read: {exc}",
                         hint=f"fix it, or point {CONFIG_ENV} at another file") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {p} is not a mapping", hint="see `kmevents config --help` for its shape")
    return data


def contexts(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ctx = data.get("contexts") or {}
    if not isinstance(ctx, dict) or not all(isinstance(v, dict) or v is None for v in ctx.values()):
        raise UsageError(f"config file {config_path()}: 'contexts' must map names to tables of settings")
    return {str(k): dict(v or {}) for k, v in ctx.items()}


def selected(data: dict[str, Any]) -> tuple[str | None, str]:
    """``(context name, where the choice came from)``: --context, KMEVENTS_CONTEXT, current-context."""
    for name, origin in ((_CHOSEN.get(), "--context"), (os.environ.get(CONTEXT_ENV), CONTEXT_ENV),
                         (data.get("current-context"), "current-context")):
        if name:
            return str(name), origin
    return None, ""


def context_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource | None:
    """The chosen context as a pydantic-settings source (None: no file, or no context chosen).

    TOML: ``TomlConfigSettingsSource`` with the table header ``contexts.<name>``; YAML:
    ``YamlConfigSettingsSource``'s data, its ``contexts.<name>`` mapping as an init source.
    """
    from pydantic_settings import InitSettingsSource, TomlConfigSettingsSource

    p = config_path()
    data = read(settings_cls, p)
    name, origin = selected(data)
    if name is None:
        return None
    known = contexts(data)
    if name not in known:
        near = difflib.get_close_matches(name, list(known), n=1)
        where = f"{p}" if data else f"{p} (which does not exist)"
        raise UsageError(f"context {name!r} (from {origin}) is not in {where}"
                         + (f"; did you mean {near[0]!r}?" if near else ""),
                         hint=f"one of {', '.join(sorted(known)) or 'none yet'}; `kmevents config get-contexts`")
    check_names(settings_cls, known[name], f"context {name!r} of {p}")
    if is_yaml(p):
        return InitSettingsSource(settings_cls, known[name])
    return TomlConfigSettingsSource(settings_cls, toml_file=p, toml_table_header=("contexts", name))


def check_names(model: Any, values: dict[str, Any], where: str, prefix: str = "") -> None:
    """Refuse a key ``model`` has no field for (nested models too), with the nearest name."""
    from pydantic import BaseModel

    fields = model.model_fields
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in fields:
            near = difflib.get_close_matches(key, list(fields), n=1)
            raise UsageError(f"{where}: unknown setting {path!r}" + (f"; did you mean '{prefix}{near[0]}'?"
                                                                     if near else ""),
                             hint=f"settings here: {', '.join(fields)}")
        sub = fields[key].annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, dict):
            check_names(sub, value, where, f"{path}.")


_CURRENT_TOML = re.compile(r'^current-context\s*=.*$', re.M)
_CURRENT_YAML = re.compile(r'^current-context\s*:.*$', re.M)


def set_current(settings_cls: type[BaseSettings], name: str, path: Path | None = None) -> Path:
    """Make ``name`` the file's ``current-context`` (the rest of the file is kept as written)."""
    p = path or config_path()
    data = read(settings_cls, p)
    known = contexts(data)
    if name not in known:
        near = difflib.get_close_matches(name, list(known), n=1)
        raise UsageError(f"no context {name!r} in {p}" + (f"; did you mean {near[0]!r}?" if near else ""),
                         hint=f"one of {', '.join(sorted(known)) or 'none yet: add [contexts.NAME] to the file'}")
    text = p.read_text()
    if is_yaml(p):
        line, pattern = f"current-context: {_yaml_str(name)}", _CURRENT_YAML
    else:
        line, pattern = f"current-context = {_toml_str(name)}", _CURRENT_TOML
    new = pattern.sub(lambda _m: line, text, count=1) if pattern.search(text) else f"{line}\n{text}"
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(p)
    return p


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
