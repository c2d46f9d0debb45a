"""Ingest: redact, validate, pin each cluster to its partition (kmevents.store.partition_map),
produce idempotently.

    redact.py          deny/allow rules applied before anything is written or hashed
    ingestor.py        Ingestor (the pipeline), Result per event, produce_lines
"""

from kmevents.ingest.ingestor import Ingestor, Overloaded, Result, produce_lines
from kmevents.ingest.redact import DEFAULT_RULES, Redactor, Rule

__all__ = ["DEFAULT_RULES", "Ingestor", "Overloaded", "Redactor", "Result", "Rule",
           "produce_lines"]
