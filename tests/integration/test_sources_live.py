"""Live clients against local servers on 127.0.0.1 that speak the documented protocols.

A fake Mesos master pair (the first answers 307 to the leader; the leader
streams RecordIO with a Mesos-Stream-Id, heartbeats, then goes silent) and a
fake Kubernetes API server (list, watch by resourceVersion, bookmarks, 410
Gone). Every test is bounded in time and stops by itself.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from kmevents.sources import (
    Backoff,
    KubernetesParser,
    OperatorClient,
    OperatorParser,
    StateParser,
    StatePoller,
    WatchClient,
)
from kmevents.sources.kubernetes import DISCONNECTED
from kmevents.sources.recordio import encode
from tests.unit.sources._helpers import SAMPLES, canonical, load, records

pytestmark = pytest.mark.timeout(60)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def fake_leader(silence: asyncio.Event) -> web.Application:
    first = [json.loads(r) for r in records("mesos/operator_subscribe.recordio")]
    first[0]["subscribed"]["heartbeat_interval_seconds"] = 0.2
    second = [json.loads(r) for r in records("mesos/operator_resubscribe.recordio")]
    second[0]["subscribed"]["heartbeat_interval_seconds"] = 0.2
    conns = {"n": 0}

    async def api(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["type"] == "GET_MASTER":
            return web.json_response(load("mesos/master_info.json"))
        assert body["type"] == "SUBSCRIBE"
        conns["n"] += 1
        n = conns["n"]
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Mesos-Stream-Id": f"stream-{n}"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for ev in first if n == 1 else second:
            wire = encode(json.dumps(ev).encode())
            for i in range(0, len(wire), 700):  # records split across chunks
                await resp.write(wire[i:i + 700])
        for _ in range(2):
            await asyncio.sleep(0.1)
            await resp.write(encode(b'{"type":"HEARTBEAT"}'))
        if n == 1:
            await silence.wait()  # heartbeats stop, the connection stays open
        return resp

    app = web.Application()
    app.router.add_post("/api/v1", api)
    return app


def redirector(target: str) -> web.Application:
    async def api(request: web.Request) -> web.Response:
        host = target.removeprefix("http:")
        return web.Response(status=307, headers={"Location": f"{host}/api/v1"})

    app = web.Application()
    app.router.add_post("/api/v1", api)
    return app


async def test_operator_client_follows_the_leader_and_reconnects_after_silence() -> None:
    silence = asyncio.Event()
    leader, leader_url = await serve(fake_leader(silence))
    other, other_url = await serve(redirector(leader_url))
    try:
        parser = OperatorParser("prod-1")
        client = OperatorClient(other_url, parser, backoff=Backoff(base=0.05, cap=0.2, seed=1),
                                max_connections=2, first_event_timeout=5.0)
        events = []
        async with asyncio.timeout(30):
            async for batch in client.run():
                events += batch
        silence.set()
    finally:
        await other.cleanup()
        await leader.cleanup()
    assert client.redirects >= 1 and client.connections == 2
    canonical(events)
    assert {e["source"]["stream_id"] for e in events} == {"stream-1", "stream-2"}
    assert events[0]["type"] == "master.elected"
    lost = [e for e in events if e["type"] == "master.heartbeat_lost"]
    assert len(lost) == 1
    assert lost[0]["payload"] == {"master_id": "20150708-150322-16777343-5050-1234", "missed": 2,
                                  "interval_seconds": 0.2}
    after = events[events.index(lost[0]) + 1:]
    assert after[0]["type"] == "cluster.snapshot_observed" and after[0]["source"]["stream_id"] == "stream-2"
    assert any(e["type"] == "task.status_updated" and e["payload"]["status"]["state"] == "TASK_UNKNOWN"
               for e in after)


async def test_state_poller_polls_until_bounded() -> None:
    polls = iter([load(f"mesos/master_state_{i}.json") for i in (1, 2, 3)])

    async def state(request: web.Request) -> web.Response:
        return web.json_response(next(polls))

    app = web.Application()
    app.router.add_get("/master/state", state)
    runner, url = await serve(app)
    try:
        poller = StatePoller(url, StateParser("prod-1"), interval=0.01, max_polls=3)
        events = []
        async with asyncio.timeout(20):
            async for batch in poller.run():
                events += batch
    finally:
        await runner.cleanup()
    canonical(events)
    assert [e["source"]["seq"] for e in events if e["type"] == "cluster.snapshot_observed"] == [0, 1, 2]


def fake_apiserver(log: list[str]) -> web.Application:
    lists = iter([{"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "99"}, "items": []},
                  load("k8s/pods_relist.json")])
    watch_lines = (SAMPLES / "k8s/pods_watch.ndjson").read_text().splitlines()

    async def pods(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            log.append("list")
            return web.json_response(next(lists))
        rv = request.query["resourceVersion"]
        log.append(f"watch@{rv}")
        assert request.query["allowWatchBookmarks"] == "true"
        if rv == "5":
            return web.Response(status=410)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if rv == "99":
            for line in watch_lines:
                await resp.write(line.encode() + b"\n")
            await resp.write(json.dumps(load("k8s/watch_gone.json")).encode() + b"\n")
        elif rv == "230":
            bookmark = {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "231"}}}
            await resp.write(json.dumps(bookmark).encode() + b"\n")
        return resp  # the watch ends (server-side timeout)

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods)
    return app


async def test_watch_resumes_by_resource_version_and_relists_after_gone() -> None:
    log: list[str] = []
    runner, url = await serve(fake_apiserver(log))
    try:
        client = WatchClient(url, "pods", KubernetesParser("prod-1"), backoff=Backoff(base=0.05, seed=1),
                             max_watches=3)
        events = []
        async with asyncio.timeout(20):
            async for batch in client.run():
                events += batch
    finally:
        await runner.cleanup()
    assert log == ["list", "watch@99", "list", "watch@230", "watch@231"]
    canonical(events)
    deleted = [e for e in events if e["type"] == "pod.deleted" and e["payload"]["reason"] == DISCONNECTED]
    assert [e["payload"]["pod"]["name"] for e in deleted] == ["web-1a2b3"]
    assert {e["source"]["stream_id"] for e in events} >= {"pods@99", "pods@230"}
