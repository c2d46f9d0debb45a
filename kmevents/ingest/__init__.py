"""Ingest: redact, validate, pin each cluster to its partition (kmevents.store.partition_map),
produce idempotently.

    redact.py          Redactor: path rules and secret rules, before anything is written or hashed
    redact_rules.py    what a secret looks like: key rules (words of a key), text rules (KEY=x, PEM...)
    redact_places.py   where a secret can be in each payload, derived from the contract models
    ingestor.py        Ingestor (the pipeline), Result per event, produce_lines
"""

from kmevents.ingest.ingestor import Ingestor, Overloaded, Result, produce_lines
from kmevents.ingest.redact import DEFAULT_RULES, Redactor, Rule

__all__ = ["DEFAULT_RULES", "Ingestor", "Overloaded", "Redactor", "Result", "Rule",
           "produce_lines"]
