"""What a quarantined record looks like where it is kept (pure: no I/O).

A record a parser failed on is kept raw, with its position, in the quarantine topic
(``settings.kafka.quarantine_topic``, ``kmevents.quarantine``) or, in a dry run, a
JSON-lines file. One Kafka record per quarantined record:

    key     ``<stream_id>:<seq>``  (a record quarantined twice, by a re-import, has the same key)
    value   JSON: ``stream_id``, ``seq``, ``reason``, ``raw_b64`` (the record's bytes),
            ``cluster``, ``source`` (the summary's name for it), ``kind`` (``k8s.audit``...),
            ``origin`` (``FILE:LINE`` for imports, else null), ``masked`` (how many secret
            values were masked in ``raw_b64``), ``quarantined_at``

The quarantine is kept as long as the log (retention -1), so the secret rules of ingest
(``kmevents.ingest.redact_rules``, with the ``KMEVENTS_REDACT__*`` additions) are applied
to the raw record before it is kept: in a JSON record, the scalar value of every key that
names a secret (a secret-named object is searched key by key: ``"secret": {"secretName": ...}``
keeps the name), secrets in text values, the value of a ``{"name"|"key": "DB_PASSWORD", "value": x}``
pair (Kubernetes EnvVar, Mesos Label), and every value of a Kubernetes Secret's ``data``
and ``stringData``; in a record that is not JSON, secrets in its text. Nothing else is
changed, and a record with nothing to mask keeps its exact bytes.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from kmevents.ingest.redact_rules import LEAKY, MASK, PLAIN, SecretRules
from kmevents.sources.guard import Held


def quarantine_key(held: Held) -> bytes:
    return f"{held.record.stream_id}:{held.record.seq}".encode()


def quarantine_value(held: Held, *, cluster: str, rules: SecretRules, at: str) -> dict[str, Any]:
    """The stored form of ``held`` (the raw record masked as the module docstring says)."""
    raw, masked = mask_record(held.record.raw, rules)
    q = held.record
    return {"stream_id": q.stream_id, "seq": q.seq, "reason": q.reason,
            "raw_b64": base64.b64encode(raw).decode(), "cluster": cluster, "source": held.source,
            "kind": held.kind, "origin": held.origin, "masked": masked, "quarantined_at": at}


def mask_record(raw: bytes, rules: SecretRules) -> tuple[bytes, int]:
    """``raw`` with its secrets masked, and how many were; ``raw`` itself when there were none."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        if not rules.may_hold(text):
            return raw, 0
        masked = rules.mask_text(text)
        if masked == text:
            return raw, 0
        return masked.encode("utf-8", "surrogateescape"), masked.count(MASK) - text.count(MASK)
    n = _mask(obj, rules)
    return (orjson.dumps(obj), n) if n else (raw, 0)


def _mask(node: Any, rules: SecretRules) -> int:
    """Mask ``node`` in place (iteratively: a record may nest deeply); returns how many values changed."""
    n = 0
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            n += _mask_known_shapes(cur, rules)
            for k in list(cur):
                v = cur[k]
                kind = rules.key_kind(k) if isinstance(k, str) else PLAIN
                if kind == LEAKY:
                    del cur[k]
                    cur[rules.mask_text(k)] = MASK
                    n += 1
                elif isinstance(v, (dict, list)):  # a secret-named container: its keys are judged one by one
                    stack.append(v)
                elif kind and v not in (None, "", MASK) and not isinstance(v, bool):
                    cur[k] = MASK
                    n += 1
                else:
                    n += _mask_text(cur, k, rules)
        elif isinstance(cur, list):
            for i, v in enumerate(cur):
                if isinstance(v, (dict, list)):
                    stack.append(v)
                else:
                    n += _mask_text(cur, i, rules)
    return n


def _mask_known_shapes(obj: dict[str, Any], rules: SecretRules) -> int:
    """A Kubernetes Secret's ``data``/``stringData``; a ``{"name"|"key": <secret name>, "value": x}`` pair."""
    n = 0
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            body = obj.get(field)
            if isinstance(body, dict):
                for k in body:
                    if body[k] != MASK:
                        body[k] = MASK
                        n += 1
    named = obj.get("name", obj.get("key"))
    if isinstance(named, str) and obj.get("value") not in (None, "", MASK) and rules.is_secret_key(named):
        obj["value"] = MASK
        n += 1
    return n


def _mask_text(container: Any, key: Any, rules: SecretRules) -> int:
    v = container[key]
    if isinstance(v, str) and rules.may_hold(v):
        m = rules.mask_text(v)
        if m != v:
            container[key] = m
            return 1
    return 0
