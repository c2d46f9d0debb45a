"""``kmevents api``: the HTTP API on uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

import argparse

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

examples:
  kmevents api
  kmevents api --port 8081
  curl -H 'Authorization: Bearer s3cret' 'http://127.0.0.1:8080/v1/clusters/prod/pods?state=Running'
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="the HTTP API (ingest; queries)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    add_connection_flags(p)
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from kmevents.api.app import create_app

    settings = settings_from(args, **{"api.host": args.host, "api.port": args.port})
    setup_logging(settings)
    uvicorn.run(create_app(settings), host=settings.api.host, port=settings.api.port, log_level="warning")
    return 0
