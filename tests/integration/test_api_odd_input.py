"""Odd and hostile input to the HTTP API, over real HTTP on 127.0.0.1 into a real Kafka + etcd (issue 14).

No request fails as a whole for one bad event: ``POST [valid, bad]`` is a 207
with the valid event written and the bad one refused with its index and
reason (it was a 500 that dropped the valid one). Time parameters out of
range are refused like any bad parameter (they were 500s). A chunked body is
cut off at the size limit. A seeded fuzz loop of mutated bodies never gets a
500, and every event it sent unchanged is accepted.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from kmevents.settings import Settings
from tests.integration.test_ingest import read_all, status_event
from tests.integration.test_ingest_api import Server, _with_tokens
from tests.strategies import paths_of

AUTH = {"Authorization": "Bearer ingest-token"}


@pytest.fixture
def api(isolated: Settings) -> Iterator[tuple[str, Settings]]:
    s = _with_tokens(isolated)
    with Server(s) as url:
        yield url, s


def _post(url: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(f"{url}/v1/events", content=body, headers={**AUTH, "Content-Type": content_type}, timeout=60)


def _written(s: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in asyncio.run(read_all(s))]


def test_a_valid_and_a_bad_event_get_207_with_the_valid_one_written(api: tuple[str, Settings]) -> None:
    url, s = api
    odd = [{**status_event(s.cluster, 2), "schema_version": {}},              # was a TypeError: 500
           {**status_event(s.cluster, 3), "occurred_at": 1767225600000000},  # was an OverflowError: 500
           {**status_event(s.cluster, 4), "occurred_at": "9999-12-31T23:59:59Z"}]
    for bad in odd:
        r = _post(url, orjson.dumps([status_event(s.cluster, 1), bad]))
        assert r.status_code == 207, r.text
        data = r.json()
        assert (data["accepted"], data["refused"]) == (1, 1)
        ok, refused = data["results"]
        assert ok["ok"] and ok["index"] == 0 and ok["offset"] is not None
        assert not refused["ok"] and refused["index"] == 1 and refused["errors"]
    reasons = [_post(url, orjson.dumps([bad])).json()["results"][0]["errors"] for bad in odd]
    assert reasons[0][0]["field"] == "schema_version"
    assert "looks like microseconds: divide by 1,000" in reasons[1][0]["reason"]
    assert "KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS" in reasons[2][0]["reason"]
    assert len(_written(s)) == 3


def test_a_key_written_twice_refuses_that_event_only(api: tuple[str, Settings]) -> None:
    url, s = api
    twice = orjson.dumps(status_event(s.cluster, 2))[:-1] + b',"type":"task.status_updated"}'
    body = b"[" + orjson.dumps(status_event(s.cluster, 1)) + b"," + twice + b"]"
    r = _post(url, body)
    assert r.status_code == 207, r.text
    assert [x["ok"] for x in r.json()["results"]] == [True, False]
    assert r.json()["results"][1]["errors"][0]["reason"].startswith("duplicate key 'type' in event at index 1")
    r = _post(url, orjson.dumps(status_event(s.cluster, 3)) + b"\n" + twice + b"\n", "application/x-ndjson")
    assert r.status_code == 207, r.text
    assert r.json()["results"][1]["errors"][0]["reason"].startswith("duplicate key 'type' in event at line 2")
    nested = orjson.dumps(status_event(s.cluster, 4)).replace(b'"state":', b'"state":"TASK_LOST","state":')
    r = _post(url, nested)
    assert r.status_code == 422 and "'state' (in payload.status)" in r.json()["results"][0]["errors"][0]["reason"]
    assert sorted(e["source"]["seq"] for e in _written(s)) == [1, 3]


def test_an_event_nested_deeper_than_can_be_stored_is_a_400_naming_it(api: tuple[str, Settings]) -> None:
    url, s = api
    body = b"[" + orjson.dumps(status_event(s.cluster, 1)) + b"," + b"[" * 300 + b"]" * 300 + b"]"
    r = _post(url, body)
    assert r.status_code == 400 and "index 1 is nested more than 254 levels" in r.json()["detail"]


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Status line and headers, and the body by its Content-Length, within 10 s."""
    reply = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        head, sep, rest = reply.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(rest) >= length:
                return head, rest
        part = sock.recv(65536)
        if not part:
            break
        reply += part
    return reply.partition(b"\r\n\r\n")[::2]


def test_a_chunked_body_is_refused_with_413_as_soon_as_it_passes_the_limit(isolated: Settings) -> None:
    """The body never ends: the server must answer from what it read, not wait for the rest."""
    s = _with_tokens(isolated, max_body_bytes=64 * 1024)
    with Server(s) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ingest-token\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"[" + b" " * 8191
            for _ in range(12):  # 96 KiB, no terminating chunk
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.settimeout(10)
            head, rest = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 413"), head + rest[:300]
    assert b"65,536" in rest and b"KMEVENTS_API__MAX_BODY_BYTES" in rest
    assert _written(s) == []


@pytest.mark.parametrize(("param", "value", "fragment"), [
    ("at", "1767225600000000", "looks like microseconds: divide by 1,000"),
    ("known_at", "99999999999999999999", "looks like nanoseconds"),
    ("known_at", "0001-01-01T00:00:00Z", "before 1970-01-01"),
    ("at", "-100000000w", "outside 1970-01-01"),
])
def test_time_parameters_out_of_range_are_refused_like_any_bad_parameter(
        api: tuple[str, Settings], param: str, value: str, fragment: str) -> None:
    """They were 500s. The API answers a bad query parameter with 422 and its path (as for ?at=yesterday)."""
    url, s = api
    assert _post(url, orjson.dumps([status_event(s.cluster, 1)])).status_code == 200
    read = {"Authorization": "Bearer read-token"}
    r = httpx.get(f"{url}/v1/clusters/{s.cluster}/tasks", params={param: value}, headers=read, timeout=60)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["query", param] and fragment in detail["msg"], detail
    r = httpx.get(f"{url}/v1/clusters/{s.cluster}/search", params={"from": value}, headers=read, timeout=60)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "from"], r.text


# ---- a bounded, seeded fuzz loop ----

_ODD: list[Any] = [
    {}, [], [1, 2], None, True, False, 0, -1, 2**64, 10**30, 1e300, 1.5, "", "x" * 300, "\u0000", "\ud7ff",
    1767225600000000, 1767225600000000000, 1767225600000.0, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
    "2015-02-30T00:00:00.000000Z", {"a": {"b": {"c": []}}}, [[[[[]]]]],
]


def _mutated(rng: random.Random, event: dict[str, Any]) -> dict[str, Any]:
    """One field replaced, dropped or added: an envelope field half of the time, else any field at any depth."""
    event = copy.deepcopy(event)
    path = (rng.choice(list(event)),) if rng.random() < 0.5 else rng.choice(paths_of(event))
    parent = event
    for part in path[:-1]:
        parent = parent[part]
    how = rng.random()
    if how < 0.6:
        parent[path[-1]] = rng.choice(_ODD)
    elif how < 0.8 and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent["unexpected_" + str(rng.randrange(100))] = rng.choice(_ODD)
    return event


def _damaged(rng: random.Random, data: bytes) -> bytes:
    how = rng.randrange(4)
    cut = rng.randrange(1, max(2, len(data)))
    if how == 0:
        return data[:cut]
    if how == 1:
        return data[:cut] + bytes([rng.randrange(256)]) + data[cut:]
    if how == 2:
        return data[:cut] + b"\xff\xfe" + data[cut:]
    return data.replace(b"{", b'{"cluster":"x",', 1)  # a key written twice


def test_a_seeded_fuzz_of_mutated_bodies_never_gets_a_500_and_keeps_every_unchanged_event(
        api: tuple[str, Settings]) -> None:
    url, s = api
    rng = random.Random(14)
    seq = 0
    statuses: dict[int, int] = {}
    accepted = 0
    for _ in range(200):
        items: list[tuple[bool, Any]] = []
        for _ in range(rng.randrange(1, 5)):
            seq += 1
            event = status_event(s.cluster, seq)
            items.append((True, event) if rng.random() < 0.5 else (False, _mutated(rng, event)))
        ndjson = rng.random() < 0.4
        texts = [json.dumps(ev, separators=(",", ":")).encode() for _, ev in items]
        damaged = rng.random() < 0.25
        if damaged:
            i = rng.randrange(len(texts))
            texts[i] = _damaged(rng, texts[i])
            items[i] = (False, None)
        if ndjson:
            r = _post(url, b"\n".join(texts) + b"\n", "application/x-ndjson")
        else:
            r = _post(url, b"[" + b",".join(texts) + b"]")
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code in (200, 207, 400, 422), (r.status_code, r.text[:500])
        if r.status_code == 400:
            assert damaged and not ndjson, r.text[:500]
            continue
        results = r.json()["results"]
        assert len(results) == len(items)
        for (unchanged, _), res in zip(items, results, strict=True):
            assert res["ok"] or not unchanged, res
            assert res["ok"] or res["errors"], res
        accepted += r.json()["accepted"]
    assert statuses.get(207, 0) > 30 and statuses.get(422, 0) > 10, statuses
    assert len(_written(s)) == accepted
