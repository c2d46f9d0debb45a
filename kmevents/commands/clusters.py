"""``kmevents clusters``: every cluster kmevents knows, its partition, checkpoint and log span."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

HELP = """\
Every cluster known to etcd (ingested: it has a partition in the partition map;
or derived: it has state), one row each:

  PARTITION     its partition of the events topic
  CHECKPOINT    the last offset of that partition whose effect is in etcd
                (<none>: the processors have derived nothing of it yet)
  BEHIND        records of the partition past the checkpoint (all clusters of
                the partition: the processors' lag)
  FIRST EVENT   occurred_at of the cluster's first event in the log
  LAST EVENT    occurred_at of its last event
-o wide adds the offsets, both recorded times and the generation. The same
clusters as the API's GET /v1/clusters. When Kafka cannot be reached, the log
columns stay empty and a line on stderr says why (exit 1).

examples:
  kmevents clusters
  kmevents clusters -o wide --tz local
  kmevents clusters --format json | jq -r '.clusters[] | select(.behind > 0) | .name'
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._common import add_connection_flags, add_format_flag
    from kmevents.commands._output import add_output_flag

    p = sub.add_parser("clusters", help="known clusters: partition, checkpoint, first and last event",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_flag(p, ("table", "wide", "json"))
    add_format_flag(p)
    add_connection_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kmevents.commands._common import emit_json, settings_from
    from kmevents.commands._output import note, output_of
    from kmevents.commands._source import run as run_async

    settings = settings_from(args)
    out = output_of(args)
    rows, problems = run_async(lambda: _describe(settings))
    if out == "json":
        emit_json({"clusters": rows, "problems": problems})
    else:
        for p in problems:
            note(f"# {p}")
        _print(rows, wide=out == "wide")
    return 1 if problems else 0


async def _describe(settings: Any) -> tuple[list[dict[str, Any]], list[str]]:
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.api.reads import EtcdReader
    from kmevents.errors import EnvironmentProblem

    client = etcd_adapter.client(settings.etcd)
    try:
        reader = EtcdReader(settings, client)
        try:
            rev, known = await asyncio.wait_for(reader.clusters(), settings.etcd.timeout_seconds)
            views = [await reader.view(c["name"], revision=rev) for c in known]
        except Exception as exc:  # noqa: BLE001 - every failure to read etcd is this one problem
            details = getattr(exc, "details", None)
            text = details() if callable(details) else str(exc)
            raise EnvironmentProblem(f"cannot read the clusters from etcd at {settings.etcd.endpoint}: "
                                     f"{' '.join(str(text).split())[:200]}",
                                     hint="start the stack (`kmevents stack up`) or pass --etcd URL") from None
    finally:
        with contextlib.suppress(Exception):  # closing a client that never connected
            await client.close()
    rows = [{"name": v.cluster, "partition": v.partition, "generation": v.generation,
             "checkpoint": v.offset, "log_end": None, "behind": None, "first_event": None, "last_event": None}
            for v in views]
    problems: list[str] = []
    try:
        await _log_spans(settings, rows)
    except Exception as exc:  # noqa: BLE001 - the etcd columns still answer
        problems.append(f"the log at {settings.kafka.bootstrap} cannot be read ({' '.join(str(exc).split())[:200]}):"
                        " no first/last events")
    return rows, problems


async def _log_spans(settings: Any, rows: list[dict[str, Any]]) -> None:
    from kmevents.adapters import kafka as kafka_adapter
    from kmevents.replay.clusters import first_and_last
    from kmevents.replay.sources import KafkaSource

    topic = settings.kafka.events_topic
    readers: dict[int, Any] = {}
    try:
        for r in rows:
            p = r["partition"]
            if p is None:
                continue
            if p not in readers:
                readers[p] = kafka_adapter.PartitionReader(settings.kafka, topic, p)
            src = KafkaSource(settings.kafka, topic, p, r["name"], reader=readers[p])
            head, tail, end = await asyncio.wait_for(first_and_last(src), 120)
            r["first_event"], r["last_event"], r["log_end"] = head, tail, end
            if r["checkpoint"] is not None:
                r["behind"] = max(end - 1 - r["checkpoint"], 0)
            else:
                r["behind"] = None
    finally:
        for rd in readers.values():
            with contextlib.suppress(Exception):  # closing a client that never connected
                await rd.close()


def _print(rows: list[dict[str, Any]], *, wide: bool) -> None:
    from kmevents.commands._output import note, table
    from kmevents.timespec import show_time

    if not rows:
        note("No clusters found: nothing was ingested yet (kmevents ingest, simulate --to-kafka, follow).")
        return
    headers = ["name", "partition", "checkpoint", "behind", "first event", "last event"]
    if wide:
        headers += ["first offset", "last offset", "last recorded", "log end", "generation"]
    out = []
    for r in rows:
        f, last = r["first_event"] or {}, r["last_event"] or {}
        row = [r["name"], r["partition"], r["checkpoint"], r["behind"], show_time(f.get("occurred_at")),
               show_time(last.get("occurred_at"))]
        if wide:
            row += [f.get("offset"), last.get("offset"), show_time(last.get("recorded_at")), r["log_end"],
                    r["generation"]]
        out.append(row)
    print(table(out, headers))
