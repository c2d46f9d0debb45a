"""``kmevents get``: list entities of a kind, now or at any point, as kubectl lists them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from kmevents.errors import CheckFailed, UsageError

HELP = """\
List pods, tasks, agents, replication controllers, services and the other
kinds of a cluster, as `kubectl get` does: one row each with its name, its
condition (STATUS/STATE) and its age; -o wide adds columns, -o json/yaml
gives every field plus the computed `condition`, -o name gives KIND/ID.

Where it reads:
  (default)         the live state in etcd, as the processors derived it; when
                    etcd cannot be reached, or holds no derived state for the
                    cluster, the log is replayed instead (a line on stderr says so)
  --at TIME         SOURCE time: the events that occurred at or before TIME
  --known-at TIME   LOG time: what the log had recorded by TIME
  --offset N        the log up to offset N of the cluster's partition
  --source ARCHIVE  replay archives (no server needed)
Every replay uses the same engine and snapshots as `kmevents state` and the
API's ?at=, and the same filters as the API's lists (--state, --agent,
--framework, --namespace, --role, -l).

KIND is plural, singular or short: pods (po), tasks, agents, replicationcontrollers
(rc), services (svc), namespaces (ns), nodes (no), offers, frameworks, roles,
executors, inverseoffers, clusters (the leading master); several with commas
(pods,svc). NAME is an id or a name: pod NAME or NS/NAME, agent HOST, task
TASK_ID. Deleted pods are kept in the state for history; --all lists them.

examples:
  kmevents get pods -n kube-system
  kmevents get po -l app=mysql -o wide
  kmevents get agents --at 'yesterday 14:05' --tz local
  kmevents get tasks --field-selector state=TASK_LOST --at -15m
  kmevents get pod kube-system/kube-dns-v8-x1 -o yaml
  kmevents get rc,svc --source incident.kmarch --known-at 2026-01-01T00:05:00Z
  kmevents get agents -o json | jq '.items[] | select(.condition=="removed") | .hostname'
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._output import add_output_flag
    from kmevents.commands._source import SOURCE_HELP, add_source_flags
    from kmevents.timespec import TIME_HELP

    p = sub.add_parser("get", help="list entities of a kind, now or at any point (like kubectl get)",
                       description=HELP + "\n" + TIME_HELP + ".\n\n" + SOURCE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="*", metavar="KIND [NAME ...]", help="a kind (pods, po, svc, ...) and names")
    p.add_argument("-n", "--namespace", help="only this Kubernetes namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (the default)")
    p.add_argument("-l", "--selector", help="label selector (app=mysql, tier in (db,cache), !canary)")
    p.add_argument("--field-selector", metavar="SELECTOR",
                   help="field=value / field!=value on the entity's fields, comma means AND "
                        "(phase=Running, total.cpus=32, condition=TASK_LOST, status.phase=Running)")
    p.add_argument("--state", help="condition(s), comma-separated (TASK_RUNNING, removed, Running, Ready ...)")
    p.add_argument("--agent", help="agent id or host name")
    p.add_argument("--framework", help="framework id (or a framework's name with `get frameworks`)")
    p.add_argument("--role", help="Mesos role")
    p.add_argument("-a", "--all", action="store_true", help="also deleted pods (kept in the state for history)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", metavar="TIME", help="source time: events that occurred at or before TIME")
    when.add_argument("--known-at", metavar="TIME", help="log time: what the log had recorded by TIME")
    when.add_argument("--offset", type=int, metavar="N", help="offset in the cluster's partition (inclusive)")
    p.add_argument("--max-lag", metavar="DURATION", help="with --at: stop reading where the log time passes "
                                                       "TIME + DURATION (e.g. 1h)")
    p.add_argument("--sort-by", metavar="FIELD", help="sort by this field (a dotted path, e.g. since, total.cpus)")
    p.add_argument("--no-headers", action="store_true", help="tables without their header line")
    add_output_flag(p, ("table", "wide", "json", "yaml", "name"))
    add_source_flags(p)
    p.set_defaults(func=run)


@dataclass
class Listing:
    """What was read: entities per kind, and where they came from."""

    cluster: str
    source: str  # "etcd" or "replay"
    tables: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    frameworks: dict[str, str] = field(default_factory=dict)
    position: dict[str, Any] | None = None  # a replay's
    checkpoint: dict[str, Any] | None = None  # live: offset, revision, generation
    now_micros: int | None = None  # the time ages count to


def run(args: argparse.Namespace) -> int:
    from kmevents import kinds, selectors
    from kmevents.api.filters import EntityFilter
    from kmevents.commands._output import output_of
    from kmevents.commands._positional import reclaim

    reclaim(args, "what")
    if not args.what:
        raise UsageError("give a KIND", hint=f"e.g. kmevents get pods; kinds: {kinds.valid_names()}")
    wanted: list[str] = kinds.resolve_all([args.what[0]]) or []
    names = args.what[1:]
    if names and len(wanted) > 1:
        raise UsageError("NAMEs go with one kind", hint="e.g. kmevents get pod kube-system/kube-dns-x1")
    if args.max_lag and not args.at:
        raise UsageError("--max-lag only goes with --at")
    states = frozenset(s.strip() for s in args.state.split(",") if s.strip()) if args.state else None
    flt = EntityFilter(states or None, args.agent, args.framework, args.namespace, args.role,
                       selectors.parse(args.selector) if args.selector else None)
    fields = selectors.parse_fields(args.field_selector) if args.field_selector else None
    out = output_of(args)
    target = _target(args)
    listing = _read(args, wanted, target)
    found, missing = _select(listing, wanted, names, flt, fields, show_all=args.all or bool(names))
    _print(listing, found, out, args, single=len(names) == 1 and len(wanted) == 1)
    if missing:
        raise CheckFailed("; ".join(f'{kinds.plural(wanted[0])} "{n}" not found' for n in missing)
                          + f" in {listing.cluster}" + (f" at {target.describe()}" if target is not None else ""),
                          hint=f"list them with `kmevents get {kinds.plural(wanted[0])}`; a name is an id, a name "
                               "or a host name")
    return 0


def _target(args: argparse.Namespace) -> Any:
    from kmevents.replay.engine import Target

    if args.at is None and args.known_at is None and args.offset is None:
        return None
    return Target.parse(at=args.at, known_at=args.known_at, offset=args.offset, max_lag=args.max_lag)


def _read(args: argparse.Namespace, kinds_: list[str], target: Any) -> Listing:
    from kmevents.commands._common import settings_from
    from kmevents.commands._output import note, output_of
    from kmevents.commands._source import run as run_async

    settings = settings_from(args)
    cluster = args.cluster or settings.cluster
    replay_only = target is not None or bool(args.source) or bool(args.topic)

    async def main() -> Listing:
        if not replay_only:
            live, why = await _live(settings, cluster, kinds_)
            if live is not None:
                return live
            if output_of(args) not in ("json", "yaml", "name"):
                note(f"{why}: replaying the log instead")
        return await _replayed(args, kinds_, target)

    return run_async(main)


async def _live(settings: Any, cluster: str, kinds_: list[str]) -> tuple[Listing | None, str]:
    """The live state from etcd, or ``(None, why not)``."""
    import orjson

    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.api.reads import EtcdReader

    endpoint = settings.etcd.endpoint
    client = etcd_adapter.client(settings.etcd)
    try:
        reader = EtcdReader(settings, client)
        try:
            v = await asyncio.wait_for(reader.view(cluster), settings.etcd.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - any failure to reach etcd means: replay instead
            return None, f"etcd at {endpoint} cannot be read ({_short(exc)})"
        if not v.known:
            raise UsageError(f"cluster {cluster!r} is unknown to etcd at {endpoint}: nothing was ever ingested "
                             "or derived for it", hint="list the clusters with `kmevents clusters`, or pass --cluster")
        if v.checkpoint is None:
            return None, f"etcd holds no derived state of {cluster!r} yet (is `kmevents process` running?)"
        out = Listing(cluster, "etcd", now_micros=time.time_ns() // 1000,
                      checkpoint={"offset": v.offset, "revision": v.revision, "generation": v.generation,
                                  "partition": v.partition})
        from kmevents.commands._columns import NEEDS_FRAMEWORKS, NEEDS_HOSTS

        wanted = set(kinds_) | ({"agent"} if NEEDS_HOSTS & set(kinds_) else set()) | (
            {"framework"} if NEEDS_FRAMEWORKS & set(kinds_) else set())
        prefix = f"{settings.etcd.prefix}/clusters/{cluster}/{v.generation}/"
        for kind in wanted:
            items: list[tuple[str, dict[str, Any]]] = []
            cut = len(prefix) + len(kind) + 1
            async for chunk in reader.scan(v, kind):
                items.extend((kv.key[cut:].decode(), orjson.loads(kv.value)) for kv in chunk)
            out.tables[kind] = items
        _names(out)
        return out, ""
    finally:
        with contextlib.suppress(Exception):  # closing a client that never connected
            await client.close()


async def _replayed(args: argparse.Namespace, kinds_: list[str], target: Any) -> Listing:
    from kmevents.commands._source import open_source
    from kmevents.replay.engine import Target, replay
    from kmevents.timespec import micros_of

    async with open_source(args) as o:
        r = await replay(o.source, o.cluster, target or Target(), snapshots=o.snapshots,
                         progress=not args.no_progress)
    pos = r.position()
    point = target.at or target.known_at if target is not None else None
    last = (r.last or {}).get("occurred_at")
    out = Listing(o.cluster, "replay", position=pos,
                  now_micros=point.micros if point is not None else micros_of(last) if last else None)
    for kind in set(kinds_) | {"agent", "framework"}:
        out.tables[kind] = sorted(r.state.entities(kind))
    _names(out)
    return out


def _names(out: Listing) -> None:
    out.hosts = {i: str(v.get("hostname")) for i, v in out.tables.get("agent", []) if v.get("hostname")}
    out.frameworks = {i: str(v.get("name")) for i, v in out.tables.get("framework", []) if v.get("name")}


def _short(exc: BaseException) -> str:
    """One line of an exception (a gRPC error's details, not its six-line repr)."""
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return (" ".join(str(text).split()) or type(exc).__name__)[:160]


def _select(listing: Listing, wanted: list[str], names: list[str], flt: Any, fields: Any,
            *, show_all: bool) -> tuple[dict[str, list[tuple[str, dict[str, Any]]]], list[str]]:
    """The entities to show per kind, and the NAMEs that matched none."""
    import dataclasses

    from kmevents.kinds import plural
    from kmevents.reducer.conditions import condition
    from kmevents.replay.history import named
    from kmevents.selectors import has_field

    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    hit: set[str] = set()
    # --agent HOST: also the entities that name only the agent's id (tasks, executors)
    filters = [flt]
    if flt.agent is not None:
        filters += [dataclasses.replace(flt, agent=i) for i, h in listing.hosts.items() if h == flt.agent]
    for k in wanted:
        items = listing.tables.get(k, [])
        if fields is not None and items:
            for req in fields.requirements:
                if req.path != ("condition",) and not any(has_field(v, req.path) for _, v in items):
                    sample = sorted({f for _, v in items[:50] for f in v} | {"condition"})
                    raise UsageError(f"no {k} has a field {'.'.join(req.path)!r}",
                                     hint=f"fields of {plural(k)}: {', '.join(sample)}")
        rows = []
        for id, v in items:
            if not show_all and k == "pod" and v.get("deleted") is not None:
                continue
            if names:
                matched = [n for n in names if named(k, id, v, n)]
                if not matched:
                    continue
                hit.update(matched)
            if not any(f.matches(k, id, v) for f in filters):
                continue
            if fields is not None and not fields.matches({**v, "condition": condition(v)}):
                continue
            rows.append((id, v))
        found[k] = rows
    return found, [n for n in names if n not in hit]


def _print(listing: Listing, found: dict[str, list[tuple[str, dict[str, Any]]]], out: str,
           args: argparse.Namespace, *, single: bool) -> None:
    from kmevents import kinds
    from kmevents.commands._columns import Context, columns, rows
    from kmevents.commands._common import emit_json
    from kmevents.commands._output import emit_yaml, note, table
    from kmevents.reducer.conditions import condition

    for items in found.values():
        if args.sort_by:
            path = tuple(args.sort_by.strip().lstrip("{").rstrip("}").lstrip(".").split("."))
            items.sort(key=lambda kv: _sort_key(kv[1], path))
    if out in ("json", "yaml"):
        docs = [{"kind": k, "id": id, **v, "condition": condition(v)} for k, items in found.items() for id, v in items]
        if single and len(docs) == 1:
            doc: dict[str, Any] = docs[0]
        else:
            doc = {"cluster": listing.cluster, "source": listing.source, "count": len(docs), "items": docs}
            if len(found) == 1:
                doc["kind"] = kinds.plural(next(iter(found)))
            if listing.position is not None:
                doc["position"] = listing.position
            if listing.checkpoint is not None:
                doc["checkpoint"] = listing.checkpoint
        if out == "json":
            emit_json(doc)
        else:
            emit_yaml(doc)
        return
    if out == "name":
        for k, items in found.items():
            for id, _v in items:
                print(f"{k}/{id}")
        return
    _where(listing)
    ctx = Context(listing.hosts, listing.frameworks, listing.now_micros)
    blocks = []
    for k, items in found.items():
        if not items:
            scope = f" in namespace {args.namespace}" if args.namespace else ""
            note(f"No {kinds.plural(k)} found{scope} in {listing.cluster}.")
            continue
        cols = columns(k, wide=out == "wide", namespaced=k in kinds.NAMESPACED, with_namespace=not args.namespace)
        text = table(rows(k, items, ctx, cols, by_name=not args.sort_by), [c.header for c in cols],
                     no_headers=args.no_headers)
        blocks.append(text)
    if blocks:
        print("\n\n".join(blocks))


def _where(listing: Listing) -> None:
    from kmevents.commands._output import note
    from kmevents.timespec import show_time

    if listing.checkpoint is not None:
        c = listing.checkpoint
        note(f"# {listing.cluster}: live state from etcd (checkpoint offset {c['offset']}, revision {c['revision']})")
    elif listing.position is not None:
        p = listing.position
        last = p.get("last_event") or {}
        note(f"# {listing.cluster}: replayed {p['target']} from {p['source']} (last event offset {last.get('offset')},"
             f" occurred {show_time(last.get('occurred_at')) or 'n/a'})")
        if p.get("gaps"):
            note(f"# WARNING: the sources miss offsets {p['gaps']}: the state may be incomplete")


def _sort_key(v: dict[str, Any], path: tuple[str, ...]) -> tuple[int, Any]:
    from kmevents.selectors import field_value, has_field

    if not has_field(v, path):
        return (2, "")
    x = field_value(v, path)
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return (0, x)
    return (1, str(x))
