"""Redaction on the real path: issue 14's planted secrets go through ingest into Kafka, a
worker folds them into etcd, and no secret is in any Kafka record or any etcd key or
value, while the names of Secrets (issue 16) and the ids come through."""

from __future__ import annotations

import copy

import orjson

from kmevents.adapters import etcd as etcd_adapter
from kmevents.ingest import Ingestor
from kmevents.settings import Settings
from tests.integration.test_ingest import read_all
from tests.integration.test_processors import run_worker_until_caught_up
from tests.unit.redact_cases import KEPT, KEPT_VALUES, PLANTED


async def test_planted_secrets_reach_neither_kafka_nor_etcd_and_secret_names_reach_both(isolated: Settings) -> None:
    events = [dict(copy.deepcopy(e), cluster=isolated.cluster) for e in [c[1] for c in PLANTED] + KEPT]
    markers = [c[2].encode() for c in PLANTED]
    async with Ingestor(isolated) as ing:
        results = await ing.submit(events)
    assert [r.errors for r in results if not r.ok] == []

    records = await read_all(isolated)
    assert len(records) == len(events)
    log = b"\n".join(r.value for r in records)
    assert [m for m in markers if m in log] == []
    assert [v for v in KEPT_VALUES if v.encode() not in log] == []
    for (name, _, _, path), res in zip(PLANTED, results, strict=False):
        assert f"payload.{path}" in res.redacted, name
    for r in records:  # what the API and archives serve is these records: each lists what it lost
        stored = orjson.loads(r.value)
        assert bool(stored["redacted"]) == (stored["source"]["seq"] < len(PLANTED))

    await run_worker_until_caught_up(isolated)
    prefix = isolated.etcd.prefix.encode()
    async with etcd_adapter.client(isolated.etcd) as c:
        _, kvs = await etcd_adapter.range_at(c, prefix, range_end=etcd_adapter.prefix_end(prefix))
    state = b"\n".join(kv.key + b" " + kv.value for kv in kvs)
    assert b"keep-default-token-x9f2k" in state, "the pod (with its volumes) was not folded into etcd"
    assert [m for m in markers if m in state] == []
    assert [v for v in KEPT_VALUES if v.encode() not in state] == []
