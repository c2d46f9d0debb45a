"""The read side of the HTTP API over real HTTP on 127.0.0.1, on a real Kafka + etcd.

One module-wide cluster: a simulated log is ingested and derived into etcd once,
then every test reads it through the API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.reducer import fold
from kmevents.settings import ApiToken, Settings
from kmevents.simulate import generate
from tests.integration.test_ingest_api import Server
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.stacks import TestStack

N_EVENTS = 3000
READ = {"Authorization": "Bearer read-token"}


@dataclass
class Env:
    url: str
    s: Settings
    events: list[dict]


def _settings(stack: TestStack) -> Settings:
    tag = uuid.uuid4().hex[:8]
    s = stack.settings.model_copy(deep=True)
    s.kafka.events_topic = f"q{tag}.events"
    s.kafka.snapshots_topic = f"q{tag}.snapshots"
    s.kafka.deadletter_topic = f"q{tag}.deadletter"
    s.kafka.alerts_topic = f"q{tag}.alerts"
    s.etcd.prefix = f"/q{tag}/kmevents/v1"
    s.cluster = f"c{tag}"
    s.api.tokens = [
        ApiToken(token="read-token", name="viewer", scopes=["read"]),
        ApiToken(token="ingest-token", name="k8sm", scopes=["ingest"]),
        ApiToken(token="elsewhere", name="other", scopes=["read"], clusters=["elsewhere"]),
        ApiToken(token="prod-only", name="prod-team", scopes=["read"], namespaces=["prod"]),
    ]
    s.api.metrics_cache_seconds = 0
    return s


@pytest.fixture(scope="module")
def env(stack: TestStack) -> Iterator[Env]:
    s = _settings(stack)
    asyncio.run(kafka_adapter.ensure_topics(s.kafka))

    async def prepare() -> None:
        await ingest_sim(s, s.cluster, N_EVENTS, seed=3)
        await run_worker_until_caught_up(s, snapshot_every_events=1000)

    asyncio.run(prepare())
    events = list(generate(s.cluster, 3, N_EVENTS, agents=20))
    with Server(s) as url:
        yield Env(url, s, events)


def get(env: Env, path: str, headers: dict[str, str] | None = None, **params: object) -> httpx.Response:
    return httpx.get(f"{env.url}{path}", params=params, headers=READ if headers is None else headers, timeout=60)


def test_a_list_reads_one_revision_and_says_which_checkpoint_offset_it_reflects(env: Env) -> None:
    r = get(env, f"/v1/clusters/{env.s.cluster}/tasks", limit=1000)
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Kmevents-Offset"]) == N_EVENTS - 1
    assert int(r.headers["X-Kmevents-Revision"]) > 0
    assert r.headers["X-Kmevents-Source"] == "etcd" and r.headers["X-Kmevents-Ahead"] == "0"
    st, _ = fold(env.events, cluster=env.s.cluster)
    assert {t["id"] for t in r.json()["items"]} == {i for i, _ in st.entities("task")}


def test_pages_follow_continue_tokens_at_the_first_pages_revision(env: Env) -> None:
    path = f"/v1/clusters/{env.s.cluster}/pods"
    first = get(env, path, limit=7)
    rev = first.headers["X-Kmevents-Revision"]
    # A write after page 1 must not show up in page 2: the token pins the revision.
    key = layout.entity_key(env.s.etcd.prefix, env.s.cluster, layout.live_generation(), "pod", "zzz/late-pod")

    async def put() -> None:
        async with etcd_adapter.client(env.s.etcd) as c:
            await c.put(key, orjson.dumps({"id": "zzz/late-pod", "namespace": "zzz", "name": "late-pod"}))

    asyncio.run(put())
    ids = [p["id"] for p in first.json()["items"]]
    token = first.json()["continue"]
    while token:
        r = get(env, path, limit=7, **{"continue": token})
        assert r.status_code == 200, r.text
        assert r.headers["X-Kmevents-Revision"] == rev
        ids += [p["id"] for p in r.json()["items"]]
        token = r.json()["continue"]
    st, _ = fold(env.events, cluster=env.s.cluster)
    assert ids == sorted(i for i, _ in st.entities("pod"))
    latest = get(env, path, limit=1000)
    assert "zzz/late-pod" in {p["id"] for p in latest.json()["items"]}
    assert latest.headers["X-Kmevents-Ahead"] == "1"
    assert latest.json()["ahead_of_checkpoint"] == ["zzz/late-pod"]

    async def delete() -> None:
        async with etcd_adapter.client(env.s.etcd) as c:
            await c.delete(key)

    asyncio.run(delete())


def test_filters_state_namespace_and_label_selectors(env: Env) -> None:
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    running = get(env, f"/v1/clusters/{c}/tasks", state="TASK_RUNNING", limit=1000).json()["items"]
    assert running and {t["state"] for t in running} == {"TASK_RUNNING"}
    assert len(running) == sum(1 for _, t in st.entities("task") if t["state"] == "TASK_RUNNING")
    pods = [p for _, p in st.entities("pod")]
    app = next(p["labels"]["app"] for p in pods if (p.get("labels") or {}).get("app"))
    sel = get(env, f"/v1/clusters/{c}/pods", labelSelector=f"app={app}", limit=1000).json()["items"]
    assert {p["id"] for p in sel} == {p["id"] for p in pods if (p.get("labels") or {}).get("app") == app}
    neg = get(env, f"/v1/clusters/{c}/pods", labelSelector=f"app notin ({app}),app", limit=1000).json()["items"]
    assert neg and all(p["labels"]["app"] != app for p in neg)
    ns = get(env, f"/v1/clusters/{c}/pods", namespace="kube-system", limit=1000).json()["items"]
    assert ns and {p["namespace"] for p in ns} == {"kube-system"}
    agent = next(a for _, a in st.entities("agent"))
    on_agent = get(env, f"/v1/clusters/{c}/tasks", agent=agent["hostname"], limit=1000).json()["items"]
    assert {t["agent_id"] for t in on_agent} <= {agent["id"]}


def test_one_entity_the_master_and_a_missing_entity(env: Env) -> None:
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    pid, pod = next(iter(sorted(st.entities("pod"))))
    r = get(env, f"/v1/clusters/{c}/pods/{pid}")
    assert r.status_code == 200 and r.json()["value"] == orjson.loads(orjson.dumps(pod))
    m = get(env, f"/v1/clusters/{c}/master").json()
    assert m["leader"]["id"] == st.entity("cluster", c)["leader"]["id"]
    assert get(env, f"/v1/clusters/{c}/pods/no/such-pod").status_code == 404
    assert get(env, "/v1/clusters/never-seen/pods").status_code == 404
    clusters = get(env, "/v1/clusters").json()["clusters"]
    assert c in {x["name"] for x in clusters}


def test_time_travel_by_offset_and_source_time_equals_the_fold_of_that_prefix(env: Env) -> None:
    c = env.s.cluster
    r = get(env, f"/v1/clusters/{c}/tasks", offset=999, limit=1000)
    assert r.status_code == 200, r.text
    assert r.headers["X-Kmevents-Source"] == "replay" and r.headers["X-Kmevents-Offset"] == "999"
    st, _ = fold(env.events[:1000], cluster=c)
    assert {t["id"]: t["state"] for t in r.json()["items"]} == {i: t["state"] for i, t in st.entities("task")}
    t_at = env.events[1500]["occurred_at"]
    r = get(env, f"/v1/clusters/{c}/pods", at=t_at, limit=1000)
    st, _ = fold([e for e in env.events if e["occurred_at"] <= t_at], cluster=c)
    assert {p["id"] for p in r.json()["items"]} == {i for i, _ in st.entities("pod")}
    assert r.json()["position"]["last_event"]["occurred_at"] <= t_at
    r = get(env, f"/v1/clusters/{c}/master", known_at="2000-01-01T00:00:00Z")
    assert r.status_code == 200 and r.json()["leader"] is None


def test_tokens_scopes_clusters_and_namespaces(env: Env) -> None:
    c = env.s.cluster
    path = f"/v1/clusters/{c}/pods"
    assert get(env, path, headers={}).status_code == 401
    assert get(env, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = get(env, path, headers={"Authorization": "Bearer ingest-token"})
    assert r.status_code == 403 and "read" in r.json()["detail"]
    r = get(env, path, headers={"Authorization": "Bearer elsewhere"})
    assert r.status_code == 403 and c in r.json()["detail"]
    assert c not in {x["name"] for x in get(env, "/v1/clusters", headers={"Authorization": "Bearer elsewhere"})
                     .json()["clusters"]}
    prod = {"Authorization": "Bearer prod-only"}
    pods = get(env, path, headers=prod, limit=1000).json()["items"]
    assert pods and {p["namespace"] for p in pods} == {"prod"}
    assert get(env, f"/v1/clusters/{c}/agents", headers=prod).status_code == 403
    assert get(env, path, headers=prod, namespace="kube-system").status_code == 403
    other = get(env, path, namespace="kube-system", limit=1).json()["items"][0]["id"]
    assert get(env, f"{path}/{other}", headers=prod).status_code == 403
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert get(env, open_path, headers={}).status_code == 200, open_path


def test_bad_parameters_get_422_with_the_parameter_path(env: Env) -> None:
    c = env.s.cluster
    for params, loc in (({"limit": 0}, ["query", "limit"]), ({"limit": 5000}, ["query", "limit"]),
                        ({"labelSelector": "a in (b"}, ["query", "labelSelector"]),
                        ({"at": "yesterday"}, ["query", "at"]), ({"at": "-1h", "offset": 3}, ["query", "offset"]),
                        ({"offset": 10**9}, ["query", "offset"]), ({"continue": "garbage"}, ["query", "continue"])):
        r = get(env, f"/v1/clusters/{c}/tasks", **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["loc"] == loc, (params, r.json())
    assert get(env, f"/v1/clusters/{c}/widgets").status_code == 422
    r = httpx.get(f"{env.url}/v1/clusters/{c}/tasks?state={'x' * 9000}", headers=READ, timeout=30)
    assert r.status_code == 414


def test_the_event_stream_resumes_after_the_last_event_id(env: Env) -> None:
    c = env.s.cluster
    url = f"{env.url}/v1/clusters/{c}/events"

    def read(headers: dict[str, str], **params: object) -> list[tuple[int, str]]:
        out = []
        with httpx.stream("GET", url, params=params, headers={**READ, **headers}, timeout=30) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            ident = None
            for line in r.iter_lines():
                if line.startswith("id: "):
                    ident = int(line[4:])
                elif line.startswith("event: "):
                    out.append((ident, line[7:]))
        return out

    first = read({}, from_offset=0, limit=5, max_seconds=20)
    assert [o for o, _ in first] == [0, 1, 2, 3, 4]
    assert first[0][1] == env.events[0]["type"]
    resumed = read({"Last-Event-ID": "4"}, limit=3, max_seconds=20)
    assert [o for o, _ in resumed] == [5, 6, 7]
    typed = read({}, from_offset=0, limit=4, max_seconds=20, type="task.*")
    assert len(typed) == 4 and all(t.startswith("task.") for _, t in typed)


def test_metrics_readiness_history_and_search(env: Env) -> None:
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    text = httpx.get(f"{env.url}/metrics", timeout=30).text
    running = sum(1 for _, t in st.entities("task") if t["state"] == "TASK_RUNNING")
    assert f'kmevents_running_tasks{{cluster="{c}"}} {float(running)}' in text
    assert "kmevents_processor_lag{" in text and "kmevents_agent_resources{" in text
    assert "kmevents_rc_replicas{" in text and "kmevents_service_endpoints{" in text
    ready = httpx.get(f"{env.url}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    tid = next(i for i, t in st.entities("task") if t.get("pod"))
    h = get(env, f"/v1/clusters/{c}/history/tasks/{tid}").json()
    assert h["count"] >= 2 and any(e["type"] == "task.launched" for e in h["events"])
    found = get(env, f"/v1/clusters/{c}/search", type="pod.evicted", limit=50).json()
    assert found["count"] == min(50, sum(1 for e in env.events if e["type"] == "pod.evicted"))


def _archive(env: Env, token: str, tmp_path, **params: object):
    from kmevents.replay import archive

    r = httpx.get(f"{env.url}/v1/clusters/{env.s.cluster}/archive", params=params,
                  headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert r.status_code == 200, r.text
    path = tmp_path / f"{token}{archive.SUFFIX}"
    path.write_bytes(r.content)
    records = [rec for batch in archive.iter_batches(path) for rec in batch]
    return r, archive.read_header(path), records


def test_an_archive_for_a_full_token_holds_every_record_with_its_chain(env: Env, tmp_path) -> None:
    from kmevents import chain

    r, header, records = _archive(env, "read-token", tmp_path)
    assert r.headers["X-Kmevents-Filtered"] == "false"
    assert header["count"] == N_EVENTS == len(records)
    assert [x.offset for x in records] == list(range(N_EVENTS))
    head = header["chain_head_start"]
    assert head == chain.GENESIS
    for x in records:
        head = chain.link(head, x.key, x.value)
    assert head == header["chain_head_end"]
    assert "filtered" not in header
    assert header["snapshots"] == []  # the default spacing (50,000) is longer than this log
    # asked for denser ones, it keeps the worker's snapshots (the worker here takes one per ~1,000 events)
    _, dense, _ = _archive(env, "read-token", tmp_path, snapshot_every=1)
    assert dense["snapshots"] and all(999 <= x["offset"] < N_EVENTS for x in dense["snapshots"])


def test_an_archive_for_a_namespace_limited_token_holds_only_what_it_may_see(env: Env, tmp_path) -> None:
    from kmevents.api.filters import event_namespaces

    r, header, records = _archive(env, "prod-only", tmp_path)
    expected = [e["event_id"] for e in env.events if "prod" in event_namespaces(e)]
    assert r.headers["X-Kmevents-Filtered"] == "true"
    assert header["filtered"] == {"namespaces": ["prod"], "token": "prod-team"}
    assert header["chain_head_start"] is None and header["chain_head_end"] is None
    assert _archive(env, "prod-only", tmp_path, snapshot_every=1)[1]["snapshots"] == []  # they hold every namespace
    assert [orjson.loads(x.value)["event_id"] for x in records] == expected
    assert 0 < len(records) < N_EVENTS
    # a part of the log by offsets, and the other limits
    _, part, recs = _archive(env, "read-token", tmp_path, **{"from": 100, "to": 199})
    assert (part["covers_from"], part["covers_to"], len(recs)) == (100, 199, 100)
    assert httpx.get(f"{env.url}/v1/clusters/{env.s.cluster}/archive", timeout=30).status_code == 401
    assert httpx.get(f"{env.url}/v1/clusters/{env.s.cluster}/archive", timeout=30,
                     headers={"Authorization": "Bearer elsewhere"}).status_code == 403
