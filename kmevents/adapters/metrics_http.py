"""A long-lived command's ``/metrics``, ``/healthz`` and ``/readyz``, served on 127.0.0.1 only, in a
thread (the worker's: processors/metrics.py; a backfill follower's: replay/backfill_metrics.py).

``render()`` gives the Prometheus text at each scrape; ``health()`` gives ``(document, alive,
ready)``: ``/healthz`` answers 200 while alive, ``/readyz`` while ready, 503 otherwise, both with
the document as JSON."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


def serve(port: int, render: Callable[[], bytes], health: Callable[[], tuple[dict[str, Any], bool, bool]],
          *, name: str = "kmevents-metrics") -> ThreadingHTTPServer:
    """Serve on 127.0.0.1:``port`` (0: a free port; ``server.server_address[1]`` says which) in a
    daemon thread. Returns the server; ``shutdown()`` stops it. Raises ``OSError`` when the port is
    taken."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, status, ctype = render(), 200, "text/plain; version=0.0.4"
            elif path in ("/healthz", "/readyz"):
                doc, alive, ready = health()
                ok = alive if path == "/healthz" else ready
                body, status, ctype = orjson.dumps(doc), 200 if ok else 503, "application/json"
            else:
                body, status, ctype = b"not found: /metrics, /healthz, /readyz\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not news
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
