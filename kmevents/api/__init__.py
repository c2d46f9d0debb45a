"""The HTTP API (FastAPI on uvicorn): the one place that imports the HTTP framework.

    app.py         create_app(settings): the application, its lifespan (Ingestor, etcd client), limits
    auth.py        bearer tokens with scopes (read, ingest) and visibility limits
    ingest.py      POST /v1/events: JSON array or NDJSON, per-event results, 429 back-pressure
    query.py       GET /v1/clusters/...: lists, entities, master, history, search, time travel
    reads.py       etcd reads at one revision, checkpoint offset, keys ahead, continue tokens
    filters.py     URL kinds, entity filters, namespace visibility (pure)
    timetravel.py  ?at= / ?known_at= / ?offset= through the replay engine and snapshots
    admission.py   at most N replays at once, a short queue, then 429/503 with Retry-After
    backends.py    an unreachable Kafka or etcd told apart from a fault: 503 in one line
    stream.py      GET /v1/clusters/{c}/events: server-sent events, resumable by Last-Event-ID
    observe.py     /healthz, /readyz, /metrics (Prometheus)
"""
