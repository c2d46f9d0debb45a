"""The operator stream client against a local master of a version that sends no heartbeats
(Mesos 1.0-1.4: ``SUBSCRIBED`` has no ``heartbeat_interval_seconds``, no ``HEARTBEAT`` follows).
Bounded in time."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from kmevents.sources import Backoff, OperatorClient, OperatorParser
from kmevents.sources.recordio import encode
from tests.integration.test_sources_live import serve
from tests.unit.sources._helpers import canonical

pytestmark = pytest.mark.timeout(60)

M = "2a9e3c1d-5b7f-4e0a-8c6d-1f2e3d4c5b6a"


def quiet_master(pause: float) -> web.Application:
    async def api(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["type"] == "GET_MASTER":
            return web.json_response({"type": "GET_MASTER", "get_master": {"master_info": {
                "id": M, "ip": 16777343, "port": 5050, "hostname": "m1", "version": "1.1.3",
                "address": {"hostname": "m1", "ip": "127.0.0.1", "port": 5050}}}})
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Mesos-Stream-Id": "s-1"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(encode(json.dumps({"type": "SUBSCRIBED", "subscribed": {"get_state": {
            "get_agents": {"agents": [{"active": True, "agent_info": {
                "id": {"value": f"{M}-S0"}, "hostname": "10.2.0.10", "port": 5051}}]}}}}).encode()))
        await asyncio.sleep(pause)  # a quiet cluster: nothing happens for a while
        await resp.write(encode(json.dumps({"type": "AGENT_REMOVED", "agent_removed": {
            "agent_id": {"value": f"{M}-S0"}}}).encode()))
        return resp

    app = web.Application()
    app.router.add_post("/api/v1", api)
    return app


async def test_a_quiet_stream_of_a_master_without_heartbeats_is_not_taken_for_a_dead_one() -> None:
    runner, url = await serve(quiet_master(pause=0.6))
    try:
        client = OperatorClient(url + "/api/v1", OperatorParser("prod-1"), max_connections=1,
                                first_event_timeout=0.2, backoff=Backoff(base=0.01, cap=0.05, seed=1))
        events = []
        async with asyncio.timeout(20):
            async for batch in client.run():
                events += batch
    finally:
        await runner.cleanup()
    canonical(events)
    assert [e["type"] for e in events] == ["master.elected", "cluster.snapshot_observed", "agent.added",
                                           "agent.removed"]
    assert client.parser.heartbeat_interval is None
