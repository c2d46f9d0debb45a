"""The Kubernetes watch client against a fake API server on 127.0.0.1: a line it cannot
read is quarantined and the watch goes on; an answer nobody foresaw, or a refusal (403),
ends the run with SourceFailed instead of ending it silently or retrying forever; the
ERROR event of a 1.0 API server (no ``code``, etcd's "outdated and cleared") relists."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from kmevents.errors import SourceFailed
from kmevents.sources import Backoff, KubernetesParser, WatchClient
from tests.integration.test_sources_live import serve
from tests.unit.sources._helpers import canonical

pytestmark = pytest.mark.timeout(60)

UID = "0c4b1f7e-9a2d-11e5-8c3e-42010af00042"


def pod(rv: int, phase: str) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web-7f2k9", "namespace": "default", "uid": UID, "resourceVersion": str(rv)},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.9"}]}, "status": {"phase": phase}}


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def apiserver(log: list[str], watches: dict[str, list[bytes]], *, listing: Any = None,
              status: int = 200) -> web.Application:
    async def pods(request: web.Request) -> web.StreamResponse:
        if status != 200:
            log.append(f"{status}")
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "Forbidden", "code": status}, status=status)
        if request.query.get("watch") != "1":
            log.append("list")
            body = listing if listing is not None else {"kind": "PodList", "apiVersion": "v1",
                                                       "metadata": {"resourceVersion": "100"}, "items": []}
            return web.json_response(body)
        rv = request.query["resourceVersion"]
        log.append(f"watch@{rv}")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for chunk in watches.get(rv, []):
            await resp.write(chunk)
        return resp

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods)
    return app


async def follow(client: WatchClient) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async for batch in client.run():
            events += batch
    return events


async def test_a_watch_line_it_cannot_read_is_quarantined_and_the_watch_goes_on() -> None:
    log: list[str] = []
    watches = {"100": [line({"type": "ADDED", "object": pod(101, "Pending")}),
                       b'{"type": "MODIFIED", "object": {"kind": "Pod", "metad\n',
                       line({"type": "MODIFIED", "object": pod(103, "Running")})]}
    runner, url = await serve(apiserver(log, watches))
    parser = KubernetesParser("prod-1")
    try:
        events = await follow(WatchClient(url, "pods", parser, backoff=Backoff(base=0.01, seed=1), max_watches=2))
    finally:
        await runner.cleanup()
    assert log == ["list", "watch@100", "watch@103"]  # no reconnect in between: the watch went on
    assert [(e["type"], e["payload"]["pod"]["phase"], e["source"]["seq"]) for e in canonical(events)] == [
        ("pod.upserted", "Pending", 0), ("pod.upserted", "Running", 2)]
    (q,) = parser.outcomes.take_quarantined()
    assert (q.stream_id, q.seq, q.raw) == ("pods@100", 1, b'{"type": "MODIFIED", "object": {"kind": "Pod", "metad')


async def test_an_answer_of_an_unforeseen_shape_ends_the_run_with_source_failed() -> None:
    log: list[str] = []
    runner, url = await serve(apiserver(log, {}, listing=["not", "a", "list"]))
    client = WatchClient(url, "pods", KubernetesParser("prod-1"), backoff=Backoff(base=0.01, seed=1),
                         max_unexpected=2)
    try:
        with pytest.raises(SourceFailed, match="3 unexpected failures in a row, the last ValueError"):
            await follow(client)
    finally:
        await runner.cleanup()
    assert log == ["list"] * 3


async def test_a_forbidden_watch_ends_the_run_instead_of_retrying_forever() -> None:
    log: list[str] = []
    runner, url = await serve(apiserver(log, {}, status=403))
    client = WatchClient(url, "pods", KubernetesParser("prod-1"), backoff=Backoff(base=0.01, seed=1))
    try:
        with pytest.raises(SourceFailed, match="HTTPStatusError 403"):
            await follow(client)
    finally:
        await runner.cleanup()
    assert log == ["403"] * 4


async def test_the_error_event_of_a_1_0_api_server_relists() -> None:
    log: list[str] = []
    outdated = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "401: The event in requested index is outdated and cleared "
                           "(the requested history has been cleared [1108/1000]) [2107]"}
    watches = {"100": [line({"type": "ADDED", "object": pod(101, "Pending")}),
                       line({"type": "ERROR", "object": outdated})]}
    runner, url = await serve(apiserver(log, watches))
    parser = KubernetesParser("prod-1")
    try:
        await follow(WatchClient(url, "pods", parser, backoff=Backoff(base=0.01, seed=1), max_watches=2))
    finally:
        await runner.cleanup()
    assert log == ["list", "watch@100", "list", "watch@100"]
    assert parser.skipped.counts["ERROR without a code (the watch ended)"] == 2  # both watches ended so
