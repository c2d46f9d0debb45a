"""Ingest: redact, validate, pin each cluster to its partition, produce idempotently.

    redact.py          deny/allow rules applied before anything is written or hashed
    partition_map.py   the persistent cluster -> partition map in etcd
    ingestor.py        Ingestor (the pipeline), Result per event, produce_lines
"""

from kmevents.ingest.ingestor import Ingestor, Overloaded, Result, produce_lines
from kmevents.ingest.partition_map import PartitionMap
from kmevents.ingest.redact import DEFAULT_RULES, Redactor, Rule

__all__ = ["DEFAULT_RULES", "Ingestor", "Overloaded", "PartitionMap", "Redactor", "Result", "Rule",
           "produce_lines"]
