"""Ingest: redact, validate, pin each cluster to its partition (kmevents.store.partition_map),
produce idempotently.

    redact.py          Redactor: path rules and secret rules, before anything is written or hashed
    redact_rules.py    what a secret looks like: key rules (words of a key), text rules (KEY=x, PEM...)
    redact_places.py   where a secret can be in each payload, derived from the contract models
    ingestor.py        Ingestor (the pipeline), produce_lines
    outbox.py          record batches per partition, handed to the producer while the rest is validated
    result.py          Result: what happened to one submitted event
"""

from kmevents.ingest.ingestor import Ingestor, Overloaded, produce_lines
from kmevents.ingest.redact import DEFAULT_RULES, Redactor, Rule
from kmevents.ingest.result import Result

__all__ = ["DEFAULT_RULES", "Ingestor", "Overloaded", "Redactor", "Result", "Rule",
           "produce_lines"]
