"""POST /v1/events over real HTTP on 127.0.0.1, into a real Kafka."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
import uvicorn

from kmevents.api.app import create_app
from kmevents.settings import ApiToken, Settings
from kmevents.stack.process import free_port
from tests.integration.test_ingest import read_all, status_event


class Server:
    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        cfg = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "API did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _with_tokens(s: Settings, **api: object) -> Settings:
    s = s.model_copy(deep=True)
    s.api.tokens = [
        ApiToken(token="ingest-token", name="k8sm", scopes=["ingest"]),
        ApiToken(token="read-token", name="viewer", scopes=["read"]),
        ApiToken(token="other-cluster", name="scoped", scopes=["ingest"], clusters=["elsewhere"]),
    ]
    for k, v in api.items():
        setattr(s.api, k, v)
    return s


@pytest.fixture
def api(isolated: Settings) -> Iterator[tuple[str, Settings]]:
    s = _with_tokens(isolated)
    with Server(s) as url:
        yield url, s


def test_a_json_array_gets_per_event_results_and_valid_events_are_written(api: tuple[str, Settings]) -> None:
    url, s = api
    bad = status_event(s.cluster, 2)
    bad["payload"]["status"]["uuid"] = 7
    body = [status_event(s.cluster, 1), bad, status_event(s.cluster, 3)]
    r = httpx.post(f"{url}/v1/events", json=body, headers={"Authorization": "Bearer ingest-token"}, timeout=30)
    assert r.status_code == 207
    data = r.json()
    assert (data["accepted"], data["refused"]) == (2, 1)
    assert [x["ok"] for x in data["results"]] == [True, False, True]
    assert data["results"][1]["errors"][0]["field"] == "payload.status.uuid"
    assert len(asyncio.run(read_all(s))) == 2


def test_ndjson_is_accepted_and_a_bad_line_is_reported_in_place(api: tuple[str, Settings]) -> None:
    url, s = api
    body = orjson.dumps(status_event(s.cluster, 1)) + b"\n{oops\n" + orjson.dumps(status_event(s.cluster, 2)) + b"\n"
    r = httpx.post(f"{url}/v1/events", content=body, timeout=30,
                   headers={"Authorization": "Bearer ingest-token", "Content-Type": "application/x-ndjson"})
    assert r.status_code == 207
    res = r.json()["results"]
    assert [x["ok"] for x in res] == [True, False, True]
    assert res[1]["errors"][0]["reason"].startswith("line 2: not JSON")


def test_tokens_are_required_and_scoped(api: tuple[str, Settings]) -> None:
    url, s = api
    ev = [status_event(s.cluster, 1)]
    assert httpx.post(f"{url}/v1/events", json=ev, timeout=30).status_code == 401
    assert httpx.post(f"{url}/v1/events", json=ev, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
    r = httpx.post(f"{url}/v1/events", json=ev, headers={"Authorization": "Bearer read-token"}, timeout=30)
    assert r.status_code == 403 and "ingest" in r.json()["detail"]
    r = httpx.post(f"{url}/v1/events", json=ev, headers={"Authorization": "Bearer other-cluster"}, timeout=30)
    assert r.status_code == 403 and s.cluster in r.json()["detail"]
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    assert httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]["/v1/events"]
    assert asyncio.run(read_all(s)) == []


def test_oversized_bodies_get_413_and_saturation_gets_429_with_retry_after(isolated: Settings) -> None:
    s = _with_tokens(isolated, max_body_bytes=2000, max_in_flight_events=0)
    with Server(s) as url:
        auth = {"Authorization": "Bearer ingest-token"}
        big = [status_event(s.cluster, i) for i in range(20)]
        assert httpx.post(f"{url}/v1/events", json=big, headers=auth, timeout=30).status_code == 413
        r = httpx.post(f"{url}/v1/events", json=[status_event(s.cluster, 1)], headers=auth, timeout=30)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
    assert asyncio.run(read_all(s)) == []
