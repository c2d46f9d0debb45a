"""k8sm's leader key followed through etcd's v2 API on the real etcd of the test stack
(started with ``--enable-v2=true``), the key written over HTTP exactly as k8sm's elector
writes it: created with ``prevExist=false`` and a TTL, renewed by compare-and-swap on its
``modifiedIndex``, left to expire when the leader dies."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from aiohttp import web

from kmevents.errors import SourceFailed
from kmevents.settings import Settings
from kmevents.sources import Backoff, LeaderParser, V2LeaderKeyClient
from tests.stacks import TestStack
from tests.unit.sources._helpers import canonical

pytestmark = pytest.mark.timeout(90)

A = "3f9a2c_5d0e8a62-1b4c-4d8e-9a71-2f6c0b9e4d11"  # k8sm 1.1: <executor group, hex>_<uuid>
B = "k8sm-executor-1:8c4e2a10-77d2-4f1b-b0a5-9e3d6c1f2a47"  # k8sm 1.2: <executor id>:<uuid>
C = "5e01bb_0a7d3c9e-2f48-4b6a-8d15-c4e9a0b7f362"


class Elector:
    """What k8sm's etcdMasterElector does to the key, over etcd's v2 HTTP API."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str, key: str) -> None:
        self.http, self.url = http, f"{endpoint}/v2/keys{key}"

    async def become_master(self, ident: str, ttl: int) -> dict[str, Any]:
        resp = await self.http.put(self.url, params={"prevExist": "false"}, data={"value": ident, "ttl": ttl})
        assert resp.status_code == 201, resp.text
        return resp.json()

    async def extend_master(self, ident: str, ttl: int, prev_index: int) -> dict[str, Any]:
        resp = await self.http.put(self.url, params={"prevIndex": prev_index}, data={"value": ident, "ttl": ttl})
        assert resp.status_code == 200, resp.text
        return resp.json()


async def collect(client: V2LeaderKeyClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for batch in client.run():
        out += batch
    return out


def key_of() -> str:
    return f"/t{uuid.uuid4().hex[:8]}/mesos/k8sm/framework/Kubernetes/leader"


async def test_v2_watcher_sees_k8sm_elections_renewals_and_expiry(stack: TestStack) -> None:
    endpoint, key = stack.settings.etcd.endpoint, key_of()
    async with httpx.AsyncClient(timeout=10) as http:
        el = Elector(http, endpoint, key)
        first = await el.become_master(A, 30)
        parser = LeaderParser("prod-1", key)
        # read + renew, renew, renew (short TTL), expire, create by B: 5 watch answers
        client = V2LeaderKeyClient(endpoint, parser, backoff=Backoff(base=0.05, seed=1), max_events=5)
        task = asyncio.create_task(collect(client))
        while client.reads == 0:
            await asyncio.sleep(0.05)
        idx = first["node"]["modifiedIndex"]
        idx = (await el.extend_master(A, 30, idx))["node"]["modifiedIndex"]
        idx = (await el.extend_master(A, 30, idx))["node"]["modifiedIndex"]
        await el.extend_master(A, 1, idx)  # the leader's last renewal; then it dies
        while (await http.get(f"{endpoint}/v2/keys{key}")).status_code != 404:
            await asyncio.sleep(0.2)
        second = await el.become_master(B, 30)
        async with asyncio.timeout(30):
            events = await task
    assert [(e["type"], e["payload"], e["clock"], e["source"]) for e in canonical(events)] == [
        ("scheduler.leader_elected", {"identity": A, "previous": None}, "adapter",
         {"kind": "k8sm", "stream_id": f"{key}@{first['node']['createdIndex']}", "seq": 0}),
        ("scheduler.leader_elected", {"identity": B, "previous": A}, "adapter",
         {"kind": "k8sm", "stream_id": f"{key}@{second['node']['createdIndex']}", "seq": 0}),
    ]
    assert parser.skipped.counts == {
        "leader key renewed by the same leader": 3,
        "leader key expired: the leader stopped renewing it (no catalogue type)": 1}
    assert (parser.records_in, parser.records_mapped, parser.outcomes.quarantined_total) == (6, 2, 0)
    assert client.reads == 1


async def test_v2_watcher_rereads_after_etcd_cleared_its_event_window(stack: TestStack) -> None:
    endpoint, key = stack.settings.etcd.endpoint, key_of()
    async with httpx.AsyncClient(timeout=10) as http:
        el = Elector(http, endpoint, key)
        first = await el.become_master(A, 60)
        parser = LeaderParser("prod-1", key)
        client = V2LeaderKeyClient(endpoint, parser, backoff=Backoff(base=0.05, seed=1), max_events=1)
        task = asyncio.create_task(collect(client))
        while client.reads == 0:
            await asyncio.sleep(0.05)
        renewed = await el.extend_master(A, 60, first["node"]["modifiedIndex"])
        before = await task  # the client is away from here on
        # the leader changes and over 1000 other writes push it out of etcd's event history
        resp = await http.put(f"{endpoint}/v2/keys{key}", params={"prevIndex": renewed["node"]["modifiedIndex"]},
                              data={"value": C, "ttl": 60})
        assert resp.status_code == 200
        noise = f"{endpoint}/v2/keys{key.rsplit('/', 1)[0]}-noise"
        for i in range(1010):
            await http.put(noise, data={"value": str(i)})
        client.max_events = None
        task = asyncio.create_task(collect(client))
        while client.reads < 2:
            await asyncio.sleep(0.05)
        client.stop()
        async with asyncio.timeout(10):
            after = await task
    assert [e["payload"]["identity"] for e in before] == [A]
    sid = f"{key}@{first['node']['createdIndex']}"
    assert [(e["type"], e["payload"]) for e in canonical(after)] == [
        ("source.gap", {"stream_id": sid, "expected_seq": 2, "got_seq": 3}),
        ("scheduler.leader_elected", {"identity": C, "previous": A}),
    ]


def no_v2() -> web.Application:
    async def keys(request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found\n")

    app = web.Application()
    app.router.add_route("*", "/v2/keys/{tail:.*}", keys)
    return app


async def test_an_etcd_without_the_v2_api_ends_the_run_with_source_failed() -> None:
    from tests.integration.test_sources_live import serve

    runner, url = await serve(no_v2())
    try:
        client = V2LeaderKeyClient(url, LeaderParser("prod-1"), backoff=Backoff(base=0.01, seed=1),
                                   max_unexpected=2)
        with pytest.raises(SourceFailed, match="--enable-v2"):
            async with asyncio.timeout(20):
                await collect(client)
    finally:
        await runner.cleanup()
    assert client.failures.counts == {"V2NotServed": 3}


def etcd_from_transcript(exchanges: list[dict[str, Any]], asked: list[str], done: asyncio.Event,
                         released: asyncio.Event) -> web.Application:
    """An etcd that answers the recorded exchanges in order and records what it was asked; then
    sets ``done`` and holds the next long poll until ``released``."""
    left = list(exchanges)

    async def keys(request: web.Request) -> web.StreamResponse:
        asked.append(f"GET {request.path_qs}")
        if not left:  # a long poll nothing answers, until the test ends
            done.set()
            await released.wait()
            return web.Response(status=200, headers={"X-Etcd-Index": "0"})
        x = left.pop(0)
        return web.Response(status=x["status"], headers=x["headers"], content_type="application/json",
                            text=json.dumps(x["body"]))

    app = web.Application()
    app.router.add_get("/v2/keys/{tail:.*}", keys)
    return app


@pytest.mark.parametrize("name", ["v1.1-etcd-v2-election.ndjson", "v1.2-etcd-v2-failover.ndjson"])
async def test_the_client_asks_what_it_asked_the_real_etcd_and_the_parser_gives_the_same(name: str) -> None:
    from tests.integration.test_sources_live import serve
    from tests.unit.sources._helpers import fixed_now
    from tests.unit.sources.test_conformance_k8sm import replay, transcript

    exchanges = transcript(name)
    asked: list[str] = []
    done, released = asyncio.Event(), asyncio.Event()
    runner, url = await serve(etcd_from_transcript(exchanges, asked, done, released))
    try:
        client = V2LeaderKeyClient(url, LeaderParser("prod-1", now=fixed_now), backoff=Backoff(base=0.01, seed=1))
        task = asyncio.create_task(collect(client))
        async with asyncio.timeout(20):
            await done.wait()
        client.stop()
        async with asyncio.timeout(5):
            events = await task
    finally:
        released.set()
        await runner.cleanup()
    assert asked[:-1] == [x["request"] for x in exchanges]  # the same requests, the same waitIndex
    assert canonical(events) == replay(name)[1]


async def test_follow_k8sm_reads_the_v2_key_by_default(isolated: Settings) -> None:
    from kmevents.sources import run_source
    from tests.integration.test_ingest import read_all

    key = f"{isolated.etcd.prefix}/mesos/k8sm/framework/Kubernetes/leader"
    async with httpx.AsyncClient(timeout=10) as http:
        el = Elector(http, isolated.etcd.endpoint, key)
        first = await el.become_master(A, 30)

        async def renew() -> None:
            await asyncio.sleep(1.0)
            await el.extend_master(A, 30, first["node"]["modifiedIndex"])

        writer = asyncio.create_task(renew())
        async with asyncio.timeout(60):
            await run_source("k8sm", isolated, isolated.etcd.endpoint, key=key, max_events=1, flush_seconds=0.2,
                             seed=1)
        await writer
    stored = [json.loads(r.value) for r in await read_all(isolated)]
    assert [(e["type"], e["payload"]["identity"], e["source"]["stream_id"]) for e in stored] == [
        ("scheduler.leader_elected", A, f"{key}@{first['node']['createdIndex']}")]
