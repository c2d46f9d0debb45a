"""``run_import``: captured files through the same parsers and pipeline as the live sources.

    k8s-audit    audit logs (``--audit-log-path``: one ``audit.k8s.io`` Event per line), or
                 ``EventList`` documents (what the webhook backend posts); each Event is a record
    mesos-state  ``/master/state`` or ``/state.json`` dumps, one per file (a directory of periodic
                 dumps: cron + curl); taken in capture-time order and diffed one against the next,
                 exactly like the live poller; a file that is not a master's state (an error page, a
                 redirect's body) is quarantined, the state of a master that was not leading is skipped
    k8s-watch    ``WatchEvent`` lines (``curl ...?watch=1``, ``kubectl get -w -o json
                 --output-watch-events``), List documents (``kubectl get -o json``: its items added
                 or modified, never a deletion inferred from what it omits), or bare
                 objects (``kubectl get -w -o json``: read as ADDED, then MODIFIED; that output
                 cannot show a deletion)
    recordio     a captured Mesos operator or scheduler stream (``curl -N -d '{"type":"SUBSCRIBE"}'``),
                 RecordIO-framed; ``stream`` ``operator``/``scheduler``, or found from the first records

Times: what a record carries is used by its parser. What the parsers stamp with their
own clock (the adapter's: a diff of two states, a task added) gets the capture's time
(:func:`~kmevents.sources.captures.capture_time`): for a mesos-state dump whose ``Date``
header was kept, the master's, and those events say ``clock: master``. Clock-skew
detection is off: a capture's clock is not the importer's.

Positions: each file is a stream of its own (``<file name>`` or ``<file name>:<resource>``),
numbered by the parser. A record the reader itself cannot read (a line that is not JSON,
a cut RecordIO frame) is quarantined on the stream ``file:<path>`` at its record index, with
``origin`` ``FILE:LINE`` (or ``FILE@BYTE``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from kmevents.errors import UsageError
from kmevents.settings import Settings
from kmevents.sources._common import Event
from kmevents.sources.captures import (
    Capture,
    Value,
    capture_time,
    expand,
    json_values,
    read_capture,
    recordio_frames,
)
from kmevents.sources.guard import Guard
from kmevents.sources.k8s_audit import AuditParser
from kmevents.sources.kubernetes import KubernetesParser
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_scheduler import SchedulerParser
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.pipeline import Pipeline, SinkFailed
from kmevents.sources.prechecks import leading_master_state
from kmevents.sources.sinks import DryRunSink, KafkaSink, Sink
from kmevents.sources.summary import Summary

IMPORT_KINDS = ("k8s-audit", "mesos-state", "k8s-watch", "recordio")

#: Kubernetes kinds -> the resource the watch parser maps (kmevents.sources.kubernetes.RESOURCES).
RESOURCE_OF_KIND = {"Pod": "pods", "Node": "nodes", "ReplicationController": "replicationcontrollers",
                    "Service": "services", "Endpoints": "endpoints", "Namespace": "namespaces", "Event": "events"}
OPERATOR_ONLY = frozenset({"TASK_ADDED", "TASK_UPDATED", "AGENT_ADDED", "AGENT_REMOVED", "FRAMEWORK_ADDED",
                           "FRAMEWORK_UPDATED", "FRAMEWORK_REMOVED"})
SCHEDULER_ONLY = frozenset({"OFFERS", "INVERSE_OFFERS", "RESCIND", "RESCIND_INVERSE_OFFER", "UPDATE",
                            "UPDATE_OPERATION_STATUS", "MESSAGE", "FAILURE", "ERROR"})
NO_SKEW = math.inf


class _Import:
    """One import: the summary, the guard, the pipeline, and the options."""

    def __init__(self, cluster: str, pipeline: Pipeline, guard: Guard, summary: Summary, *, batch_size: int,
                 captured_at: float | None, options: dict[str, Any]) -> None:
        self.cluster = cluster
        self.pipeline = pipeline
        self.guard = guard
        self.summary = summary
        self.batch_size = batch_size
        self.captured_at = captured_at
        self.options = options

    async def emit(self, source: str, events: list[Event]) -> None:
        if events:
            self.pipeline.add(source, events)
        if len(self.pipeline) >= self.batch_size or len(self.guard.pending) >= self.batch_size:
            await self.pipeline.flush()

    def capture_time(self, cap: Capture, source: str) -> float:
        """The capture's time, noted in the source's tally."""
        ct = capture_time(cap, self.captured_at)
        self.summary.tally(source).notes.append(f"{cap.path.name}: adapter-clocked events at its capture time, "
                                                f"{_iso(ct.seconds)} (from its {ct.how})")
        return ct.seconds

    def reader_failure(self, source: str, kind: str, cap: Capture, seq: int, raw: bytes, reason: str,
                       origin: str) -> None:
        self.guard.quarantine(source, kind, f"file:{cap.path}", seq, raw, reason, origin=origin)

    def values(self, cap: Capture, source: str, kind: str) -> Iterator[tuple[int, Value, str]]:
        """The JSON values of ``cap`` that parsed, as ``(index, value, origin)``; the others quarantined."""
        for i, v in enumerate(json_values(cap)):
            origin = f"{cap.path}:{v.line}"
            if v.error is not None:
                self.reader_failure(source, kind, cap, i, v.raw, v.error, origin)
                continue
            yield i, v, origin

    # -- k8s-audit -------------------------------------------------------------------------

    async def audit(self, files: list[tuple[str, Path]]) -> None:
        for source, path in files:
            cap = read_capture(path)
            parser = AuditParser(self.cluster, stream_id=path.name, now=_Clock(self.capture_time(cap, source)),
                                 skew_threshold=NO_SKEW)
            for _, v, origin in self.values(cap, source, "k8s.audit"):
                obj = v.obj
                items = obj.get("items") if isinstance(obj, dict) and obj.get("kind") == "EventList" else None
                list_api = obj.get("apiVersion") if items is not None else None
                for item in items if isinstance(items, list) else [obj]:
                    if list_api is not None and isinstance(item, dict) and "apiVersion" not in item:
                        item = {**item, "apiVersion": list_api}  # a list's items take its apiVersion
                    out = self.guard.call(parser, source, "k8s.audit", parser.feed, item, item, origin=origin)
                    await self.emit(source, out)

    # -- mesos-state -----------------------------------------------------------------------

    async def mesos_state(self, files: list[tuple[str, Path]]) -> None:
        caps = []
        for source, path in files:
            cap = read_capture(path)
            caps.append((capture_time(cap, self.captured_at), str(path), source, cap))
        caps.sort(key=lambda c: (c[0].seconds, c[1]))
        now = _Clock()
        first = Path(files[0][0]).name if files else "state"
        parser = StateParser(self.cluster, stream_id=f"capture:{first}", now=now, skew_threshold=NO_SKEW,
                             offers=not self.options.get("no_offers"))
        hows: dict[str, dict[str, int]] = {}
        for i, (ct, name, source, cap) in enumerate(caps):
            hows.setdefault(source, {})
            hows[source][ct.how] = hows[source].get(ct.how, 0) + 1
            origin = name
            try:
                doc = orjson.loads(cap.body)
            except orjson.JSONDecodeError as exc:
                status = f" (HTTP status {cap.status})" if cap.status else ""
                self.reader_failure(source, "mesos.state", cap, i, cap.body,
                                    f"not JSON{status}: {exc}", origin)
                continue
            now.t = ct.seconds
            out = self.guard.call(parser, source, "mesos.state", parser.feed, cap.body, doc, origin=origin,
                                  precheck=leading_master_state)
            if ct.clock != "adapter":
                for e in out:
                    if e.get("clock") == "adapter" and not str(e.get("type", "")).startswith("source."):
                        e["clock"] = ct.clock
            await self.emit(source, out)
        for source, counts in hows.items():
            self.summary.tally(source).notes.append(
                "capture times from " + ", ".join(f"{how} x{n}" for how, n in sorted(counts.items())))
        if caps:
            self.summary.tally(caps[0][2]).notes.append(
                f"{len(caps):,} dumps in capture order: {caps[0][3].path.name} first ({_iso(caps[0][0].seconds)}), "
                f"{caps[-1][3].path.name} last ({_iso(caps[-1][0].seconds)})")

    # -- k8s-watch -------------------------------------------------------------------------

    async def k8s_watch(self, files: list[tuple[str, Path]]) -> None:
        default_resource = self.options.get("resource")
        now = _Clock()
        kp = KubernetesParser(self.cluster, now=now, skew_threshold=NO_SKEW)
        bare = 0
        for source, path in files:
            cap = read_capture(path)
            now.t = self.capture_time(cap, source)
            opened: set[str] = set()

            def stream_for(resource: str, _path: Path = path, _opened: set[str] = opened) -> None:
                if resource not in _opened:  # each file is a stream of its own, per resource
                    _opened.add(resource)
                    kp.new_stream(resource, f"{_path.name}:{resource}")

            def where(resource: str) -> Callable[[], tuple[str, int]]:
                return lambda: (kp.stream(resource).stream_id, max(kp.stream(resource).seq, 0))

            for i, v, origin in self.values(cap, source, "k8s.watch"):
                obj = v.obj
                if not isinstance(obj, dict):
                    self.reader_failure(source, "k8s.watch", cap, i, v.raw,
                                        f"a JSON {type(obj).__name__}, not a WatchEvent, List or object", origin)
                    continue
                if isinstance(obj.get("items"), list) and str(obj.get("kind", "")).endswith("List"):
                    # A List in a file is what some `kubectl get` showed, perhaps filtered (a
                    # namespace, a selector): its items are read as added or modified, and what it
                    # does not list is never taken for deleted (a live relist does that).
                    list_resource = RESOURCE_OF_KIND.get(str(obj["kind"]).removesuffix("List")) or default_resource
                    for item in obj["items"]:
                        r = _resource(item, list_resource)
                        if r is None:
                            self.guard.skip(source, f"list item of kind {_kind(item)!r} (not kept by kmevents)")
                            continue
                        stream_for(r)
                        seen = isinstance(item, dict) and _object_key(item) in kp.known.get(r, {})
                        ev = {"type": "MODIFIED" if seen else "ADDED", "object": item}
                        out = self.guard.call(kp, source, "k8s.watch", kp.feed, item, r, ev,
                                              position=where(r), origin=origin)
                        await self.emit(source, out)
                    continue
                if "type" in obj and "object" in obj:
                    ev, watched = obj, obj.get("object")
                else:
                    watched = obj
                    r = _resource(obj, default_resource)
                    key = _object_key(obj)
                    seen = r is not None and key in kp.known.get(r, {})
                    ev = {"type": "MODIFIED" if seen else "ADDED", "object": obj}
                    bare += 1
                if ev.get("type") == "ERROR":
                    status = watched if isinstance(watched, dict) else {}
                    self.guard.skip(source, f"watch ERROR (Status {status.get('code')}: the watch ended there)")
                    continue
                r = _resource(watched, default_resource)
                if r is None:
                    self.guard.skip(source, f"object of kind {_kind(watched)!r} (not kept by kmevents)")
                    continue
                stream_for(r)
                out = self.guard.call(kp, source, "k8s.watch", kp.feed, obj, r, ev, position=where(r), origin=origin)
                await self.emit(source, out)
        if bare:
            self.summary.tally(files[0][0]).notes.append(
                f"{bare:,} objects came without a watch event type (kubectl get -w -o json): read as ADDED, then "
                "MODIFIED; deletions are not visible in that output (capture with --output-watch-events)")

    # -- recordio --------------------------------------------------------------------------

    async def recordio(self, files: list[tuple[str, Path]]) -> None:
        wanted = self.options.get("stream")
        for source, path in files:
            cap = read_capture(path)
            clock = _Clock(self.capture_time(cap, source))
            frames = list(recordio_frames(cap.body))
            stream = wanted or _detect_stream(frames)
            if stream is None:
                raise UsageError(f"{path}: cannot tell an operator stream from a scheduler stream (no SUBSCRIBED "
                                 "or type particular to one of them in the capture)",
                                 hint="say which with --stream operator|scheduler")
            sid = cap.headers.get("mesos-stream-id") or path.name
            parser: Any
            if stream == "operator":
                parser, kind = OperatorParser(self.cluster, sid, now=clock, skew_threshold=NO_SKEW), "mesos.operator"
            else:
                parser, kind = SchedulerParser(self.cluster, sid, framework_info=self.options.get("framework_info"),
                                               now=clock, skew_threshold=NO_SKEW), "mesos.scheduler"
            self.summary.tally(source).notes.append(
                f"{path.name}: {stream} stream{' (detected)' if not wanted else ''}, stream id {sid}")
            subscriptions = 0
            for i, f in enumerate(frames):
                origin = f"{path}@{f.offset}"
                if f.record is None:
                    self.reader_failure(source, kind, cap, i, f.raw, f.error or "unreadable frame", origin)
                    continue
                if stream == "operator" and _type_of(f.record) == "SUBSCRIBED":
                    subscriptions += 1
                    if subscriptions > 1:  # a reconnection appended to the capture: a new stream
                        parser.new_stream(f"{sid}#{subscriptions}")
                out = self.guard.call(parser, source, kind, parser.feed_record, f.record, f.record, origin=origin)
                await self.emit(source, out)


class _Clock:
    """The clock a parser is given in an import: the time of the capture being read."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _iso(seconds: float) -> str:
    from kmevents.sources._common import at_seconds

    return at_seconds(seconds)


def _kind(obj: Any) -> str | None:
    return obj.get("kind") if isinstance(obj, dict) else None


def _resource(obj: Any, default: str | None) -> str | None:
    kind = _kind(obj)
    if kind is None:
        return default
    return RESOURCE_OF_KIND.get(str(kind))


def _object_key(obj: dict[str, Any]) -> str:
    m = obj.get("metadata") or {}
    return f"{m.get('namespace')}/{m.get('name')}" if m.get("namespace") else str(m.get("name"))


def _type_of(record: bytes) -> str | None:
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        return None
    t = obj.get("type") if isinstance(obj, dict) else None
    return t if isinstance(t, str) else None


def _detect_stream(frames: list[Any]) -> str | None:
    """``operator`` or ``scheduler`` from the first record that tells them apart: a SUBSCRIBED
    (the operator's carries ``get_state``, the scheduler's ``framework_id``) or a type only one has."""
    for f in frames:
        if f.record is None:
            continue
        try:
            obj = orjson.loads(f.record)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        t = obj.get("type")
        if t == "SUBSCRIBED":
            body = obj.get("subscribed") or {}
            if "get_state" in body:
                return "operator"
            if "framework_id" in body:
                return "scheduler"
        if t in OPERATOR_ONLY:
            return "operator"
        if t in SCHEDULER_ONLY:
            return "scheduler"
    return None


async def run_import(kind: str, paths: list[str], settings: Settings, *, cluster: str | None = None,
                     sink: Sink | None = None, batch_size: int = 1000, captured_at: float | None = None,
                     **options: Any) -> Summary:
    """Import captured files of ``kind`` (see the module docstring) into ``sink`` (default Kafka).

    ``captured_at``: epoch seconds, for captures that carry no time of their own;
    options: ``stream`` (``operator``/``scheduler``, recordio), ``framework_info`` (the
    scheduler's FrameworkInfo, recordio), ``resource`` (k8s-watch: for objects without a kind).
    Returns the :class:`Summary`, one tally per path argument.
    """
    if kind not in IMPORT_KINDS:
        raise UsageError(f"unknown import kind {kind!r}", hint=f"use one of {', '.join(IMPORT_KINDS)}")
    files = expand(paths)
    cluster = cluster or settings.cluster
    summary = Summary(f"import {kind}")
    for arg in paths:
        summary.tally(arg)
    guard = Guard(summary)
    sink = sink if sink is not None else KafkaSink(settings, cluster=cluster)
    summary.dry_run = isinstance(sink, DryRunSink)
    summary.destination, summary.quarantine_to = sink.destination, sink.quarantine_to
    await sink.start()
    try:
        pipeline = Pipeline(sink, summary, guard)
        job = _Import(cluster, pipeline, guard, summary, batch_size=batch_size, captured_at=captured_at,
                      options=options)
        run = {"k8s-audit": job.audit, "mesos-state": job.mesos_state, "k8s-watch": job.k8s_watch,
               "recordio": job.recordio}[kind]
        try:
            await run(files)
            await pipeline.flush()
        except SinkFailed as exc:
            summary.fatal = str(exc)
            pipeline.unsent()
    finally:
        await sink.stop()
    return summary
