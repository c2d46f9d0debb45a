"""The API's history route keeps each cluster's touched-entity index between requests
(replay/history_cache.py): the first history reads it whole, later ones read only what the worker
added since, and answer exactly as a history that reads nothing but the log (real Kafka, etcd and
HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from kmevents.replay import history
from kmevents.replay.history_cache import IndexCache
from kmevents.replay.opening import open_log

from kmevents.adapters import etcd as etcd_adapter
from kmevents.reducer import fold
from kmevents.settings import Settings
from kmevents.simulate import generate
from kmevents.store.snapshots import SnapshotStore
from tests.integration.test_ingest_api import Server, _with_tokens
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_versions_worker import SMALL

READ = {"Authorization": "Bearer read-token"}


def _scan(s: Settings, kind: str, id: str) -> list[dict[str, Any]]:
    """The history from the log alone (no index)."""

    async def go() -> list[dict[str, Any]]:
        async with open_log(s, cluster=s.cluster) as o:
            rel = await history.related(o.source, s.cluster, kind, [id], None, progress=False)
            return await history.collect(o.source, s.cluster, rel, progress=False)

    return orjson.loads(orjson.dumps(asyncio.run(go())))


def _pod_of(events: list[dict[str, Any]], cluster: str, not_in: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    st, _ = fold(events, cluster=cluster)
    return next(i for i, _ in st.entities("pod") if i not in not_in)


def test_the_api_keeps_the_index_between_histories_and_sees_what_the_worker_adds(isolated: Settings) -> None:
    s = _with_tokens(isolated)
    c = s.cluster
    asyncio.run(ingest_sim(s, c, 1000))
    asyncio.run(run_worker_until_caught_up(s, **SMALL))
    first = list(generate(c, 1, 1000, agents=20))
    pod = _pod_of(first, c)
    with Server(s) as url:
        def get(p: str) -> httpx.Response:
            r = httpx.get(f"{url}/v1/clusters/{c}/history/pods/{p}", headers=READ, timeout=120)
            assert r.status_code == 200, r.text
            return r

        r1 = get(pod)
        assert r1.headers["X-Kmevents-History"].endswith("index read whole"), r1.headers["X-Kmevents-History"]
        r2 = get(pod)
        assert r2.headers["X-Kmevents-History"].endswith("index kept"), r2.headers["X-Kmevents-History"]
        assert r1.json()["events"] == r2.json()["events"] == _scan(s, "pod", pod)
        # the worker closes more blocks: a kept index reads them, and answers for what they hold
        asyncio.run(ingest_sim(s, c, 1400, seed=3))
        asyncio.run(run_worker_until_caught_up(s, **SMALL))
        later = list(generate(c, 3, 1400, agents=20))
        st_first, _ = fold(first, cluster=c)
        new_pod = _pod_of(later, c, not_in={i for i, _ in st_first.entities("pod")})
        r3 = get(new_pod)
        assert r3.headers["X-Kmevents-History"].endswith("index kept"), r3.headers["X-Kmevents-History"]
        assert r3.json()["count"] >= 1 and r3.json()["events"] == _scan(s, "pod", new_pod)
        assert get(pod).json()["events"] == _scan(s, "pod", pod)


def test_a_kept_index_equals_one_read_whole_and_is_read_whole_again_when_due(isolated: Settings) -> None:
    s = isolated
    asyncio.run(ingest_sim(s, s.cluster, 1000))
    asyncio.run(run_worker_until_caught_up(s, **SMALL))

    async def go() -> None:
        async with etcd_adapter.client(s.etcd) as client:
            store = SnapshotStore(s, client)
            cache = IndexCache(s, client)
            a = await cache.index(s.cluster, store)
            assert not a.kept and cache.whole_reads == 1
            await ingest_more()
            b = await cache.index(s.cluster, store)
            whole = await history.read_index(s, client, s.cluster, store)
            assert b.kept and cache.refreshes == 1
            assert [(x.first, x.last, list(x.hashes)) for x in b.blocks] == \
                [(x.first, x.last, list(x.hashes)) for x in whole.blocks]
            assert len(b.blocks) > len(a.blocks)
            assert b.versions == whole.versions and b.opened == whole.opened
            due = IndexCache(s, client, reread_seconds=0)
            await due.index(s.cluster, store)
            assert not (await due.index(s.cluster, store)).kept and due.whole_reads == 2

    async def ingest_more() -> None:
        await ingest_sim(s, s.cluster, 1400, seed=3)
        await run_worker_until_caught_up(s, **SMALL)

    asyncio.run(go())

