"""The HTTP API (FastAPI on uvicorn): the one place that imports the HTTP framework.

    app.py       create_app(settings): the application, its lifespan (Ingestor, clients)
    auth.py      bearer tokens with scopes (read, ingest) and visibility limits
    ingest.py    POST /v1/events: JSON array or NDJSON, per-event results, 429 back-pressure
"""
