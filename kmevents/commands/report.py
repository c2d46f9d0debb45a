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

The timeline puts master failovers and k8sm leader changes first, then one
lane per alert rule (most severe first), then every agent with its down
periods; its ticks, and every time the page writes, are in --tz (an IANA zone,
UTC by default).

  kmevents report --cluster C --from 2026-01-01T00:00:00Z --to 2026-01-01T01:00:00Z -o report.html
  kmevents report --cluster C --tz Europe/Berlin -o report.html
  kmevents report --cluster C --format json | jq '.leaders[] | select(.failover)'
  kmevents report --source c.kmarch -o report.html        # from an archive, no server

--format json writes the report's data instead (to -o FILE, or stdout): the
window and its zone, the axis's ticks, the lanes, the leader changes, the
alerts (from firing to resolved), the marks, every agent with its down
periods, the service levels, the capacity series, and every notable event
(the first 20,000; "events_not_listed" counts the rest).

--from/--to are SOURCE times (ISO 8601 with a zone, epoch ms, -2h); default:
the whole log. What the window leaves open is followed for --follow after it
(15 minutes by default): a pod created in the window and Running 10 minutes
after it has its latency, an RC that recovers 20 minutes after an agent lost in
the window is still waiting, and an agent's status is the one it had then.
Events that happened later are not read: where the workers' touched-entity
index says the rest of the log holds none by then, the replay stops (a window
in the middle of a long log does not read the log to its end). --follow end
reads every event to the log's end.

With --from, the replay starts from the newest snapshot whose events all
happened before the window by more than the monitoring rules' lookback (their
rate window, or a source stream's silence, whichever is longer: 301 s by
default), not from the log's first event: a report of the last hour of a long
log reads about an hour of it. What the entities hold (agents' down periods,
leaders, endpoints) is as if the whole log had been read; the source streams
the source_silent rule watches are those heard from the snapshot on.
--no-snapshots reads the whole log.

"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._source import SOURCE_HELP, add_source_flags

    p = sub.add_parser("report", help="an HTML incident and capacity report", description=HELP + SOURCE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="start", metavar="TIME", help="window start (source time)")
    p.add_argument("--to", dest="end", metavar="TIME", help="window end (source time)")
    p.add_argument("--follow", metavar="DURATION", default="15m",
                   help="with --to: how long after the window to follow what it left open (pods created in it "
                        "reaching Running, RCs recovering after an agent lost in it): events that happened later "
                        "are not read (default 15m; 'end': every event to the log's end)")
    p.add_argument("-o", "--output", help="the file to write ('-': stdout; required for html, json defaults to stdout)")
    p.add_argument("--tz", metavar="ZONE", default=None,
                   help="the zone the page writes times in: an IANA name (Europe/Berlin), local, an offset "
                        "(+02:00) or UTC; default the global --tz, else KMEVENTS_TZ, else UTC")
    add_source_flags(p, formats=("html", "json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import orjson

    from kmevents.commands._common import check_output
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.report import axis, data, html
    from kmevents.timespec import parse_duration, parse_time

    follow_us = None if args.follow == "end" else int(parse_duration(args.follow) * 1_000_000)
    start = parse_time(args.start).iso if args.start else None
    end = parse_time(args.end).iso if args.end else None
    if start and end and end < start:
        raise UsageError("--to is before --from")
    tz = axis.zone(args.tz)
    as_json = args.format == "json"
    if not as_json and not args.output:
        raise UsageError("the HTML report needs a file to go to", hint="add -o report.html (or --format json)")
    out = "-" if not args.output else args.output
    if out != "-":
        check_output(out)  # before the replay, not after it

    async def main() -> int:
        async with open_source(args) as o:
            d = await data.collect(o.source, o.cluster, start, end, thresholds=o.settings.monitor, tz=tz,
                                   snapshots=o.snapshots, progress=not args.no_progress, follow_us=follow_us)
        doc = d.as_dict()
        body = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n" if as_json else html.render(doc).encode()
        if out == "-":
            sys.stdout.buffer.write(body)
            sys.stdout.flush()
            return 0
        Path(out).write_bytes(body)
        failovers = sum(1 for x in d.leaders if x["failover"])
        print(f"wrote {out}: {d.events_in_window:,} events, {failovers} leader changes, {len(d.alerts)} alerts, "
              f"{len(d.agents)} agents ({sum(1 for a in d.agents if a['down'])} down at some point), "
              f"{len(d.pod_latency)} pod latencies; " + (f"read from the snapshot at offset {d.seeded_at}"
                                                         if d.seeded_at is not None else "read from the log's start")
              + f" (read through record {d.read_to})")
        return 0

    return run_async(main)
