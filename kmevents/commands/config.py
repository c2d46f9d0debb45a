"""``kmevents config``: the config file's named contexts (view, get-contexts, use-context)."""

from __future__ import annotations

import argparse
from typing import Any

HELP = """\
Named contexts, like kubectl's: each holds the settings to reach one
deployment (Kafka, etcd, their TLS files, the default cluster). The file is
~/.kmevents/config.toml (or config.yaml; KMEVENTS_CONFIG=PATH names another):

  current-context = "prod"

  [contexts.prod]
  cluster = "prod-east"
  [contexts.prod.kafka]
  bootstrap = "kafka-1.prod:9093"
  security_protocol = "SSL"
  ssl_cafile = "/etc/kmevents/ca.pem"
  [contexts.prod.etcd]
  endpoint = "https://etcd.prod:2379"
  ca_cert = "/etc/kmevents/ca.pem"

  [contexts.local]
  cluster = "demo"

A context takes any setting, nested as the KMEVENTS_* variables are
(KMEVENTS_KAFKA__BOOTSTRAP is kafka.bootstrap). The context used is the first of
--context NAME (of any command, or before it), KMEVENTS_CONTEXT, current-context.
Flags win over KMEVENTS_* variables, which win over the context.

examples:
  kmevents config get-contexts
  kmevents config use-context prod
  kmevents config view                     (the file, passwords masked)
  kmevents --context local get pods -n kube-system
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="the config file's named contexts (Kafka, etcd, TLS, default cluster)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = s.add_parser("view", help="print the config file (passwords masked) and the context in use")
    v.add_argument("--format", choices=("table", "json"), default="table", help="json is for machines")
    v.add_argument("--context", metavar="NAME", help="this context instead of the current one")
    v.set_defaults(func=run_view)
    g = s.add_parser("get-contexts", help="list the contexts (the current one marked *)")
    g.add_argument("-o", "--output", choices=("table", "name"), default="table")
    g.set_defaults(func=run_get_contexts)
    c = s.add_parser("current-context", help="print the context in use and where that choice came from")
    c.set_defaults(func=run_current)
    u = s.add_parser("use-context", help="make NAME the file's current-context")
    u.add_argument("name", metavar="NAME")
    u.set_defaults(func=run_use)


def _data() -> tuple[Any, dict[str, Any]]:
    from kmevents import config
    from kmevents.settings import Settings

    path = config.config_path()
    return path, config.read(Settings, path)


def run_view(args: argparse.Namespace) -> int:
    from kmevents import config
    from kmevents.commands._common import emit_json
    from kmevents.settings import load

    path, data = _data()
    name, origin = config.selected(data)
    settings = load()  # fails like any command would on an unknown context or setting
    shown = _masked(data)
    if args.format == "json":
        emit_json({"path": str(path), "exists": path.exists(), "context": name, "chosen_by": origin or None,
                   "file": shown, "effective": _masked(settings.model_dump(mode="json"))})
        return 0
    print(f"# {path}" + ("" if path.exists() else " (does not exist)"))
    print(f"# context in use: {name or 'none'}" + (f" (from {origin})" if origin else ""))
    print(f"# effective: cluster={settings.cluster} kafka={settings.kafka.bootstrap} etcd={settings.etcd.endpoint}")
    if path.exists():
        import yaml

        print(yaml.safe_dump(shown, sort_keys=False, default_flow_style=False).rstrip())
    return 0


def _masked(o: Any, key: str = "") -> Any:
    if isinstance(o, dict):
        return {k: _masked(v, str(k)) for k, v in o.items()}
    if isinstance(o, list):
        return [_masked(v, key) for v in o]
    if o and any(w in key.lower() for w in ("password", "token", "secret")):
        return "********"
    return o


def run_get_contexts(args: argparse.Namespace) -> int:
    from kmevents import config
    from kmevents.commands._output import note, table

    path, data = _data()
    ctxs = config.contexts(data)
    name, _ = config.selected(data)
    if args.output == "name":
        for n in ctxs:
            print(n)
        return 0
    if not ctxs:
        note(f"No contexts in {path}" + ("" if path.exists() else " (it does not exist)")
             + ": see `kmevents config --help` for the file's shape.")
        return 0
    rows = [["*" if n == name else None, n, c.get("cluster"), (c.get("kafka") or {}).get("bootstrap"),
             (c.get("etcd") or {}).get("endpoint")] for n, c in ctxs.items()]
    print(table(rows, ["current", "name", "cluster", "kafka", "etcd"], empty=""))
    return 0


def run_current(args: argparse.Namespace) -> int:
    from kmevents import config
    from kmevents.errors import UsageError

    path, data = _data()
    name, origin = config.selected(data)
    if name is None:
        raise UsageError(f"no context in use ({path} sets no current-context)",
                         hint="kmevents config use-context NAME, or KMEVENTS_CONTEXT=NAME")
    print(name if origin == "current-context" else f"{name} (from {origin})")
    return 0


def run_use(args: argparse.Namespace) -> int:
    from kmevents import config
    from kmevents.settings import Settings

    path = config.set_current(Settings, args.name)
    print(f'Switched to context "{args.name}" ({path}).')
    return 0
