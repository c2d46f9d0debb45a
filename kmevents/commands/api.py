"""``kmevents api``: the HTTP API on uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging

from kmevents.commands._common import add_connection_flags, settings_from, setup_logging

HELP = """\
Serve the HTTP API: POST /v1/events ingests events (JSON array or NDJSON,
per-event results, 429 with Retry-After under back-pressure); GET
/v1/clusters/... reads derived state at one etcd revision (headers
X-Kmevents-Revision, X-Kmevents-Offset), with ?at= / ?known_at= / ?offset=
time travel, history, search and a live SSE tail (/events); /healthz, /readyz,
/metrics (Prometheus); the OpenAPI document at /openapi.json.

Tokens come from settings, e.g.
  KMEVENTS_API__TOKENS='[{"token": "s3cret", "name": "k8sm", "scopes": ["ingest"]}]'
Without any, every data endpoint answers 401 (a warning at start says so).

It starts without Kafka or etcd (503 with Retry-After until they answer) and
logs what it does: the address it listens on, Kafka, etcd, the tokens
configured (names and scopes, never the secrets), and one access-log line per
request (--no-access-log: none). KMEVENTS_LOG_FORMAT=json for JSON lines.

examples:
  kmevents api                                   http://127.0.0.1:8080
  kmevents api --port 9000 --no-access-log
  curl -H 'Authorization: Bearer s3cret' http://127.0.0.1:8080/v1/clusters
  curl -H 'Authorization: Bearer s3cret' 'http://127.0.0.1:8080/v1/clusters/prod/pods?state=Running'
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="the HTTP API (ingest; queries)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--no-access-log", action="store_true", help="no log line per request")
    add_connection_flags(p)
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from kmevents.api.app import create_app

    settings = settings_from(args, **{"api.host": args.host, "api.port": args.port})
    setup_logging(settings)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING if args.no_access_log else logging.INFO)
    logging.getLogger("kmevents.api").info(
        "starting the API", extra={"url": f"http://{settings.api.host}:{settings.api.port}",
                                   "kafka": settings.kafka.bootstrap, "etcd": settings.etcd.endpoint,
                                   "prefix": settings.etcd.prefix})
    # log_config=None: uvicorn's lines ("Uvicorn running on http://...", the access log) go
    # through the one handler setup_logging installed, in the same format as ours.
    uvicorn.run(create_app(settings), host=settings.api.host, port=settings.api.port, log_config=None,
                access_log=not args.no_access_log)
    return 0
