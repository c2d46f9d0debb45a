"""``kmevents get``: list entities of a kind, now or at any point, as kubectl lists them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
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
    """Where the entities were read from (they themselves go to each kind's :class:`_Shown` as they
    are read, one at a time: nothing holds every entity of a kind)."""

    cluster: str
    source: str  # "etcd" or "replay"
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
    show = _Show(wanted, names, flt, fields, out, args)
    listing = _read(args, wanted, target, show)
    missing = show.finish(listing, single=len(names) == 1 and len(wanted) == 1)
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


def _read(args: argparse.Namespace, kinds_: list[str], target: Any, show: _Show) -> Listing:
    from kmevents.commands._common import settings_from
    from kmevents.commands._output import note, output_of
    from kmevents.commands._source import run as run_async

    settings = settings_from(args)
    cluster = args.cluster or settings.cluster
    replay_only = target is not None or bool(args.source) or bool(args.topic)

    async def main() -> Listing:
        if not replay_only:
            live, why = await _live(settings, cluster, kinds_, show)
            if live is not None:
                return live
            if output_of(args) not in ("json", "yaml", "name"):
                note(f"{why}: replaying the log instead")
        return await _replayed(args, kinds_, target, show)

    return run_async(main)


#: Entities an etcd read of ``get`` asks for at once (the API's lists page by 500: a person waits
#: here for all of them, and each page is a round trip at one revision).
LIVE_PAGE = 2_000


async def _live(settings: Any, cluster: str, kinds_: list[str], show: _Show) -> tuple[Listing | None, str]:
    """The live state from etcd, each page of entities shown as it comes; or ``(None, why not)``."""
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
        prefix = f"{settings.etcd.prefix}/clusters/{cluster}/{v.generation}/"

        async def scan(kind: str) -> Any:
            cut = len(prefix) + len(kind) + 1
            async for chunk in reader.scan(v, kind, chunk=LIVE_PAGE):
                for kv in chunk:
                    yield kv.key[cut:].decode(), orjson.loads(kv.value)

        # agents' host names and frameworks' names first: other kinds' cells and --agent HOST use them
        names = {"agent": out.hosts, "framework": out.frameworks}
        for kind, held in names.items():
            if kind in kinds_ or kind in show.needs:
                async for id, val in scan(kind):
                    _name_of(kind, id, val, held)
                    if kind in kinds_:
                        show.add(kind, id, val)
        show.start(out)
        for kind in kinds_:
            if kind not in names:
                async for id, val in scan(kind):
                    show.add(kind, id, val)
        return out, ""
    finally:
        with contextlib.suppress(Exception):  # closing a client that never connected
            await client.close()


async def _replayed(args: argparse.Namespace, kinds_: list[str], target: Any, show: _Show) -> Listing:
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
    st = r.state
    show.refetch = st.entity_read
    for kind, held in (("agent", out.hosts), ("framework", out.frameworks)):
        for id, val in st.entities(kind):  # (decoded one at a time: a packed table keeps none)
            _name_of(kind, id, val, held)
    show.start(out)
    for kind in kinds_:
        # in id order, each decoded when its turn comes; pods deleted (kept for history) are
        # passed over without decoding them unless they are asked for (--all, NAMEs, a field selector)
        skip = "Deleted" if kind == "pod" and not show.wants_deleted else None
        ids = sorted(id for id, cond in st.conditions(kind) if cond != skip)
        for id in ids:
            val = st.entity_read(kind, id)
            if val is not None:
                show.add(kind, id, val)
    return out


def _compact(doc: dict[str, Any]) -> bytes:
    """An item of -o json kept until it is written: ``render._encode``'s bytes on one line, as a
    copy of their size: orjson's result keeps its whole output buffer (~8 KiB for a pod of ~1.3 KB;
    144k pods kept so were 1.2 GB at the large profile)."""
    from kmevents.replay.render import _encode

    return b"".join((_encode(doc, indent=False), b""))


def _name_of(kind: str, id: str, val: dict[str, Any], held: dict[str, str]) -> None:
    """An agent's host name, a framework's name, into ``held`` (the listing's names by id)."""
    name = val.get("hostname" if kind == "agent" else "name")
    if name:
        held[id] = str(name)


def _short(exc: BaseException) -> str:
    """One line of an exception (a gRPC error's details, not its six-line repr)."""
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return (" ".join(str(text).split()) or type(exc).__name__)[:160]


class _Show:
    """What ``get`` shows, fed entity by entity as they are read (:meth:`add`, in id order per
    kind): each is filtered as the API's lists filter and kept only as what is printed of it (a
    table row's cells, a JSON item's bytes, a name), so memory follows the rows shown, not the
    decoded entities (``get pods`` at the large profile held 144k pods decoded: ~1 GB;
    BENCHMARKS.md). :meth:`finish` sorts and prints them as kubectl does."""

    def __init__(self, wanted: list[str], names: list[str], flt: Any, fields: Any, out: str,
                 args: argparse.Namespace) -> None:
        from kmevents.commands._columns import NEEDS_FRAMEWORKS, NEEDS_HOSTS, row_cells
        from kmevents.reducer.conditions import condition
        from kmevents.replay.history import named
        from kmevents.replay.render import _encode
        from kmevents.selectors import has_field

        # what :meth:`add` calls for every entity, bound once (an import in it: ~1 us an entity each)
        self._row_cells, self._condition, self._named, self._encode, self._has_field = (
            row_cells, condition, named, _encode, has_field)
        #: ``(kind, id) -> value`` when the entities can be read again after :meth:`add` (a replayed
        #: state): -o json then keeps only the ids of its items
        self.refetch: Any = None
        self.wanted, self.names, self.flt, self.fields, self.out, self.args = wanted, names, flt, fields, out, args
        self.show_all = args.all or bool(names)
        #: deleted pods must be read (not passed over unread): --all, NAMEs, a field selector (its check
        #: that some entity has the field looks at every entity, as it always did)
        self.wants_deleted = self.show_all or fields is not None
        #: the kinds whose names the cells or the filters need
        self.needs = ({"agent"} if NEEDS_HOSTS & set(wanted) or flt.agent is not None else set()) | (
            {"framework"} if NEEDS_FRAMEWORKS & set(wanted) else set())
        self.path = (tuple(args.sort_by.strip().lstrip("{").rstrip("}").lstrip(".").split("."))
                     if args.sort_by else None)
        self.kept: dict[str, list[tuple[Any, Any]]] = {k: [] for k in wanted}
        self.hit: set[str] = set()
        self._filters: list[Any] = [flt]
        self._cols: dict[str, list[Any]] = {}
        self._ctx: Any = None
        #: per kind, whether some entity has each field the field selector asks about, and a sample
        #: of the fields of its first 50 entities (for the refusal's hint)
        self._has: dict[str, list[bool]] = {k: [False] * len(fields.requirements) if fields else [] for k in wanted}
        self._sample: dict[str, set[str]] = {k: set() for k in wanted}
        self._seen: dict[str, int] = dict.fromkeys(wanted, 0)
        #: entities added before :meth:`start` (agents and frameworks asked for, read for their names first)
        self._early: list[tuple[str, str, dict[str, Any]]] = []

    def start(self, listing: Listing) -> None:
        """The names are read: rows can be made from here on (:meth:`add` before it takes only agents
        and frameworks, which need no names of others)."""
        import dataclasses

        from kmevents import kinds
        from kmevents.commands._columns import Context, columns

        self._ctx = Context(listing.hosts, listing.frameworks, listing.now_micros)
        if self.flt.agent is not None:  # --agent HOST: also the entities that name only the agent's id
            self._filters = [self.flt] + [dataclasses.replace(self.flt, agent=i)
                                          for i, h in listing.hosts.items() if h == self.flt.agent]
        for k in self.wanted:
            self._cols[k] = columns(k, wide=self.out == "wide", namespaced=k in kinds.NAMESPACED,
                                    with_namespace=not self.args.namespace)
        early, self._early = self._early, []
        for k, id, v in early:
            self.add(k, id, v)

    def add(self, kind: str, id: str, v: dict[str, Any]) -> None:
        if self._ctx is None:  # (agents or frameworks read for their names, before the names are all known)
            self._early.append((kind, id, v))
            return
        fields = self.fields
        if fields is not None:
            has = self._has[kind]
            for n, req in enumerate(fields.requirements):
                if not has[n] and (req.path == ("condition",) or self._has_field(v, req.path)):
                    has[n] = True
            if self._seen[kind] < 50:
                self._sample[kind].update(v)
            self._seen[kind] += 1
        if not self.show_all and kind == "pod" and v.get("deleted") is not None:
            return
        if self.names:
            matched = [n for n in self.names if self._named(kind, id, v, n)]
            if not matched:
                return
            self.hit.update(matched)
        if not any(f.matches(kind, id, v) for f in self._filters):
            return
        condition = self._condition
        if fields is not None and not fields.matches({**v, "condition": condition(v)}):
            return
        key = _sort_key(v, self.path) if self.path is not None else None
        out = self.out
        if out in ("table", "wide"):
            self.kept[kind].append((key, self._row_cells(id, v, self._ctx, self._cols[kind])))
        elif out == "json":
            # the id when the entity can be read again (a replayed state: decoded again as it is written),
            # else the item compact (``_Show._json`` indents it as emit_json does)
            self.kept[kind].append((key, id if self.refetch is not None else
                                    _compact({"kind": kind, "id": id, **v, "condition": condition(v)})))
        elif out == "yaml":
            self.kept[kind].append((key, {"kind": kind, "id": id, **v, "condition": condition(v)}))
        else:
            self.kept[kind].append((key, f"{kind}/{id}"))

    def finish(self, listing: Listing, *, single: bool) -> list[str]:
        """Print what was kept (as kubectl: sorted by namespace and name, or ``--sort-by``); the
        NAMEs that matched nothing."""
        from kmevents import kinds
        from kmevents.commands._columns import name_order
        from kmevents.commands._output import note

        if self.fields is not None:
            for k in self.wanted:
                for req, has in zip(self.fields.requirements, self._has[k], strict=True):
                    if self._seen[k] and not has:
                        sample = sorted(self._sample[k] | {"condition"})
                        raise UsageError(f"no {k} has a field {'.'.join(req.path)!r}",
                                         hint=f"fields of {kinds.plural(k)}: {', '.join(sample)}")
        if self.path is not None:
            for kept in self.kept.values():
                kept.sort(key=lambda kv: kv[0])  # (stable: in id order among equal keys, as before)
        out = self.out
        if out == "json":
            self._json(listing, single=single)
        elif out == "yaml":
            self._yaml(listing, single=single)
        elif out == "name":
            for kept in self.kept.values():
                for _, name in kept:
                    print(name)
        else:
            from kmevents.commands._output import table

            _where(listing)
            printed = False
            for k, kept in self.kept.items():
                if not kept:
                    scope = f" in namespace {self.args.namespace}" if self.args.namespace else ""
                    note(f"No {kinds.plural(k)} found{scope} in {listing.cluster}.")
                    continue
                cols = self._cols[k]
                cells = [c for _, c in kept]
                if self.path is None:
                    cells.sort(key=name_order(cols))
                text = table(cells, [c.header for c in cols], no_headers=self.args.no_headers)
                print(("\n" if printed else "") + text)
                printed = True
        return [n for n in self.names if n not in self.hit]

    def _doc_fields(self, listing: Listing, count: int) -> dict[str, Any]:
        from kmevents import kinds

        doc: dict[str, Any] = {"cluster": listing.cluster, "source": listing.source, "count": count}
        if len(self.wanted) == 1:
            doc["kind"] = kinds.plural(self.wanted[0])
        if listing.position is not None:
            doc["position"] = listing.position
        if listing.checkpoint is not None:
            doc["checkpoint"] = listing.checkpoint
        return doc

    def _json(self, listing: Listing, *, single: bool) -> None:
        """The document ``emit_json`` wrote of every item, byte for byte, with the items encoded one
        at a time (``JsonStream``: keys sorted as ``emit_json`` sorts them)."""
        import orjson

        from kmevents.replay.render import JsonStream, stdout_writer

        count = sum(len(kept) for kept in self.kept.values())

        def items() -> Any:  # each item as emit_json encodes it, one at a time
            for kind, kept in self.kept.items():
                for _, got in kept:
                    if self.refetch is None:
                        yield self._encode(orjson.loads(got))
                        continue
                    v = self.refetch(kind, got)
                    yield self._encode({"kind": kind, "id": got, **v, "condition": self._condition(v)})

        if single and count == 1:
            stdout_writer()(next(items()) + b"\n")
            getattr(sys.stdout, "buffer", sys.stdout).flush()
            return
        doc = self._doc_fields(listing, count)
        with JsonStream() as js:
            for key in sorted([*doc, "items"]):
                if key != "items":
                    js.value(key, doc[key])
                    continue
                js.open("items", "[")
                for b in items():
                    js.encoded(None, b)
                js.close()

    def _yaml(self, listing: Listing, *, single: bool) -> None:
        from kmevents.commands._output import emit_yaml

        docs = [d for kept in self.kept.values() for _, d in kept]
        if single and len(docs) == 1:
            emit_yaml(docs[0])
            return
        head = self._doc_fields(listing, len(docs))  # (in the order the YAML always had: items after count)
        emit_yaml({k: head[k] for k in ("cluster", "source", "count")} | {"items": docs}
                  | {k: v for k, v in head.items() if k not in ("cluster", "source", "count")})


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
