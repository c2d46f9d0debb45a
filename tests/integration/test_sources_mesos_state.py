"""The master state poller against local masters on 127.0.0.1 that serve the state where each
Mesos version serves it: ``/master/state`` (0.25+), ``/master/state.json`` and ``/state.json``
(every version, the only ones before 0.25); a standby of an old master answering with its own
empty state; a master that fails for a while. Each test is bounded in time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from kmevents.errors import UsageError
from kmevents.sources import Backoff, StateParser, StatePoller
from tests.integration.test_sources_live import serve as serve_app
from tests.unit.sources._helpers import canonical

pytestmark = pytest.mark.timeout(60)

M = "20140709-170000-16842879-5050-2761"


def state(pid: str, leader: str | None = None) -> dict[str, Any]:
    """A 0.19 master's state.json (no ``active`` on slaves, no ``leader_info``)."""
    return {"version": "0.19.1", "id": M, "pid": pid, "leader": leader or pid, "hostname": "m1",
            "start_time": 1404925200.0, "elected_time": 1404925201.0, "flags": {},
            "activated_slaves": 1, "deactivated_slaves": 0, "frameworks": [], "completed_frameworks": [],
            "slaves": [{"id": f"{M}-0", "pid": "slave(1)@10.1.0.10:5051", "hostname": "10.1.0.10",
                        "registered_time": 1404925210.0, "attributes": {},
                        "resources": {"cpus": 4, "mem": 7168, "disk": 20000, "ports": "[31000-32000]"}}]}


async def serve(routes: dict[str, Any], log: list[str]) -> tuple[web.AppRunner, str]:
    """Serve ``routes`` (path -> JSON body, or a callable giving a response); log every path asked."""
    async def handle(request: web.Request) -> web.StreamResponse:
        log.append(request.path)
        got = routes.get(request.path)
        if got is None:
            return web.Response(status=404, text="Not Found")
        if callable(got):
            return got()
        return web.json_response(got)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return await serve_app(app)


async def poll(url: str, polls: int, **kw: Any) -> tuple[StatePoller, list[dict[str, Any]]]:
    poller = StatePoller(url, StateParser("prod-1"), interval=0.01, max_polls=polls,
                         backoff=Backoff(base=0.01, cap=0.05, seed=1), **kw)
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        async for batch in poller.run():
            events += batch
    return poller, events


@pytest.mark.parametrize("path", ["/master/state.json", "/state.json"])
async def test_a_master_before_0_25_is_polled_where_it_serves_its_state(path: str) -> None:
    log: list[str] = []
    runner, url = await serve({path: state("master@127.0.0.1:5050")}, log)
    try:
        poller, events = await poll(url, 2)
    finally:
        await runner.cleanup()
    assert poller.url == url + path
    canonical(events)
    assert [e["type"] for e in events] == ["cluster.snapshot_observed", "master.elected", "agent.added",
                                           "cluster.snapshot_observed"]
    # found once, then asked directly
    assert log[-1] == path and log.count("/master/state") == 1


async def test_no_state_anywhere_is_an_error_naming_what_each_path_answered() -> None:
    log: list[str] = []
    runner, url = await serve({}, log)
    try:
        with pytest.raises(UsageError) as err:
            await poll(url, 3)
    finally:
        await runner.cleanup()
    msg = str(err.value)
    for path in ("/master/state", "/master/state.json", "/state.json"):
        assert f"{url}{path}: 404" in msg
    assert "hint:" in msg and log == ["/master/state", "/master/state.json", "/state.json"]


async def test_a_url_naming_the_state_is_taken_as_given() -> None:
    log: list[str] = []
    body = state("master@127.0.0.1:5050")
    runner, url = await serve({"/master/state": {"wrong": "endpoint"}, "/master/state.json": body}, log)
    try:
        poller, events = await poll(url + "/master/state.json", 2)
        with pytest.raises(UsageError):
            await poll(url + "/nothing/here.json", 1)
    finally:
        await runner.cleanup()
    assert poller.url == url + "/master/state.json"
    assert log[:2] == ["/master/state.json", "/master/state.json"]
    assert len([e for e in events if e["type"] == "cluster.snapshot_observed"]) == 2


async def test_a_standby_old_master_sends_the_poller_to_the_leader() -> None:
    leader_routes: dict[str, Any] = {}
    leader_log: list[str] = []
    leader, leader_url = await serve(leader_routes, leader_log)
    leader_pid = "master@" + leader_url.removeprefix("http://")  # the leader's pid names where it listens
    leader_routes["/master/state.json"] = state(leader_pid)
    standby = dict(state("master@127.0.0.1:1", leader=leader_pid), slaves=[], activated_slaves=0)
    runner, url = await serve({"/master/state.json": standby}, [])
    try:
        poller, events = await poll(url, 2)
    finally:
        await runner.cleanup()
        await leader.cleanup()
    assert poller.parser.skipped.counts == {"listing of a master that does not lead": 1}
    assert poller.url == leader_url + "/master/state.json" and leader_log == ["/master/state.json"]
    assert [e["type"] for e in events] == ["cluster.snapshot_observed", "master.elected", "agent.added"]


async def test_a_failing_master_is_retried_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([web.Response(status=503, text="no leader"), web.Response(status=503, text="no leader")])
    log: list[str] = []
    body = json.dumps(state("master@127.0.0.1:5050"))

    def flaky() -> web.Response:
        return next(answers, None) or web.Response(text=body, content_type="application/json")

    runner, url = await serve({"/master/state": flaky}, log)
    try:
        with caplog.at_level("WARNING", logger="kmevents.sources.mesos"):
            poller, events = await poll(url, 3)
    finally:
        await runner.cleanup()
    assert poller.errors == 2 and "503" in (poller.last_error or "")
    assert len([r for r in caplog.records if "poll failed" in r.getMessage()]) == 2
    assert [e["type"] for e in events][:1] == ["cluster.snapshot_observed"]
