"""``kmevents monitor``: the live view and the alert rules of one cluster."""

from __future__ import annotations

import argparse
import logging
import sys

from kmevents.commands._common import (
    add_connection_flags,
    require_backends,
    settings_from,
    setup_logging,
)

HELP = """\
Follow one cluster's log live: the leading master and k8sm scheduler, agents
with their resources, running tasks, outstanding offers, the event rate and
the firing alerts (kmevents/monitor/rules.py). The state starts from the
newest snapshot plus the log; the rule windows run on source time.

Alerts go out as JSON lines (--alerts-jsonl FILE, '-' for stdout), to the
alerts topic (--alerts-topic), and to Alertmanager (--alertmanager URL, or
KMEVENTS_MONITOR__ALERTMANAGER_URL). Thresholds: KMEVENTS_MONITOR__* (e.g.
KMEVENTS_MONITOR__WINDOW_SECONDS=60, KMEVENTS_MONITOR__TASK_LOST_PER_AGENT=5).

It checks that Kafka and etcd answer first (else one line naming which, exit
2) and logs what it follows and where alerts go.

examples:
  kmevents monitor --cluster C                 live view (Ctrl-C to stop)
  kmevents monitor --cluster C --once          one frame, then exit
  kmevents monitor --cluster C --headless --alerts-jsonl -   rules only
  kmevents monitor --engine faust ...          the rules as Faust agents
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="live view of a cluster with alert rules", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cluster", help="cluster name (default KMEVENTS_CLUSTER)")
    p.add_argument("--once", action="store_true", help="render one frame after catching up, then exit")
    p.add_argument("--headless", action="store_true", help="no terminal view: evaluate rules and send alerts")
    p.add_argument("--alerts-jsonl", metavar="FILE", help="write alert transitions as JSON lines ('-': stdout)")
    p.add_argument("--alerts-topic", action="store_true", help="produce alerts to the alerts topic")
    p.add_argument("--alertmanager", metavar="URL", help="Alertmanager base URL (POST /api/v2/alerts)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between evaluations (default 2)")
    p.add_argument("--engine", choices=("plain", "faust"), default="plain",
                   help="plain asyncio loop (default) or Faust agents with windowed tables")
    p.add_argument("--web-port", type=int, default=0, help="with --engine faust: Faust web port on 127.0.0.1")
    add_connection_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from kmevents.monitor import consumer, sinks, view

    settings = settings_from(args, **{"monitor.alertmanager_url": args.alertmanager})
    setup_logging(settings)
    cluster = args.cluster or settings.cluster
    logging.getLogger("kmevents.monitor").info("starting the monitor", extra={
        "cluster": cluster, "engine": args.engine, "topic": settings.kafka.events_topic,
        "kafka": settings.kafka.bootstrap, "etcd": settings.etcd.endpoint,
        "alerts_to": [name for name, on in (("jsonl:" + str(args.alerts_jsonl), bool(args.alerts_jsonl)),
                                            ("topic:" + settings.kafka.alerts_topic, args.alerts_topic),
                                            ("alertmanager:" + str(settings.monitor.alertmanager_url),
                                             bool(settings.monitor.alertmanager_url))) if on] or "none"})
    require_backends(settings)
    if args.engine == "faust":
        from kmevents.monitor.faust_rules import run_worker

        return run_worker(settings, [cluster], web_port=args.web_port, jsonl=args.alerts_jsonl)

    async def main() -> int:
        out: list[sinks.Sink] = []
        opened = None
        if args.alerts_jsonl:
            opened = sys.stdout if args.alerts_jsonl == "-" else open(args.alerts_jsonl, "a")  # noqa: SIM115
            out.append(sinks.JsonLines(opened, settings.monitor.runbook_base))
        if args.alerts_topic:
            out.append(sinks.AlertsTopic(settings))
        if settings.monitor.alertmanager_url:
            out.append(sinks.Alertmanager(settings.monitor.alertmanager_url, settings.monitor.runbook_base))
        try:
            if args.once:
                m = await consumer.run(settings, cluster, out, once=True)
                if not args.headless:
                    print(view.render_text(m))
                return 0
            if args.headless:
                await consumer.run(settings, cluster, out, eval_seconds=args.interval)
                return 0
            from rich.live import Live

            with Live(refresh_per_second=2, screen=False) as live:
                await consumer.run(settings, cluster, out, eval_seconds=args.interval,
                                   on_frame=lambda m: live.update(view.frame(m)))
            return 0
        finally:
            for s in out:
                await s.close()
            if opened is not None and opened is not sys.stdout:
                opened.close()

    return asyncio.run(main())
