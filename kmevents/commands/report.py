"""``kmevents report``: a self-contained HTML incident and capacity report of a window."""

from __future__ import annotations

import argparse

from kmevents.errors import UsageError

HELP = """\
Replay a cluster's log and write one self-contained HTML file (no external
assets; charts drawn as inline SVG by an inline script):

- an incident timeline: notable events, state changes and the alerts the
  monitoring rules raise, one lane per agent;
- service levels: pod creation to Running latency, time to reschedule after
  an agent is lost, endpoint availability per service;
- capacity history per agent and per role (total, allocated, offered).

  kmevents report --cluster C --from 2026-01-01T00:00:00Z --to 2026-01-01T01:00:00Z -o report.html

--from/--to are SOURCE times (ISO 8601 with a zone, epoch ms, -2h); default:
the whole log.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("report", help="an HTML incident and capacity report", description=HELP + SOURCE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="start", metavar="TIME", help="window start (source time)")
    p.add_argument("--to", dest="end", metavar="TIME", help="window end (source time)")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    add_source_flags(p, snapshots=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kmevents.commands._common import check_output
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.report import data, html
    from kmevents.timespec import parse_time

    check_output(args.output)  # before the replay, not after it
    start = parse_time(args.start).iso if args.start else None
    end = parse_time(args.end).iso if args.end else None
    if start and end and end < start:
        raise UsageError("--to is before --from")

    async def main() -> int:
        async with open_source(args, want_snapshots=False) as o:
            d = await data.collect(o.source, o.cluster, start, end, thresholds=o.settings.monitor)
        Path(args.output).write_text(html.render(d.as_dict()), encoding="utf-8")
        print(f"wrote {args.output}: {d.events_in_window:,} events, {len(d.timeline)} timeline marks, "
              f"{len(d.capacity_agents)} agents, {len(d.pod_latency)} pod latencies")
        return 0

    return run_async(main)
