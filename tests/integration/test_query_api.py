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
from kmevents.reducer import condition, fold
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
    assert r.status_code == 200 and r.json()["value"] == {**orjson.loads(orjson.dumps(pod)), "condition": condition(pod)}
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


def test_pages_of_a_point_in_time_list_follow_continue_tokens(env: Env) -> None:
    """A point-in-time list pages through the held state's ids sorted once (state_routes.sorted_ids):
    the pages, token after token, are the fold's ids in order, each once; a filter still applies."""
    c = env.s.cluster
    path = f"/v1/clusters/{c}/tasks"
    ids: list[str] = []
    token = None
    pages = 0
    while True:
        r = get(env, path, offset=1499, limit=7, **({"continue": token} if token else {}))
        assert r.status_code == 200, r.text
        ids += [t["id"] for t in r.json()["items"]]
        pages += 1
        token = r.json()["continue"]
        if not token:
            break
    st, _ = fold(env.events[:1500], cluster=c)
    assert ids == sorted(i for i, _ in st.entities("task")) and pages > 2
    running = [t["id"] for t in get(env, path, offset=1499, limit=1000, state="TASK_RUNNING").json()["items"]]
    assert running == sorted(i for i, t in st.entities("task") if t["state"] == "TASK_RUNNING")


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
    # a type no event has, or a glob none matches, would scan the whole log to answer "0 events"
    for path in (f"/v1/clusters/{c}/search", f"/v1/clusters/{c}/events"):
        for typ, says in (("pod.evictd", "did you mean 'pod.evicted'?"), ("pods.*", "did you mean 'pod.*'?")):
            r = get(env, path, type=typ)
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "type"], (path, typ, r.text)
            assert says in r.json()["detail"][0]["msg"], r.json()
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
    assert f"kmevents_running_tasks {float(running)}" in text  # the module's cluster is the only one
    assert "kmevents_processor_lag{" in text and "kmevents_agent_resources{" in text
    assert "kmevents_rc_replicas{" in text and "kmevents_service_endpoints{" in text
    ready = httpx.get(f"{env.url}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    tid = next(i for i, t in st.entities("task") if t.get("pod"))
    h = get(env, f"/v1/clusters/{c}/history/tasks/{tid}").json()
    assert h["count"] >= 2 and any(e["type"] == "task.launched" for e in h["events"])
    found = get(env, f"/v1/clusters/{c}/search", type="pod.evicted", limit=50).json()
    assert found["count"] == min(50, sum(1 for e in env.events if e["type"] == "pod.evicted"))


def test_the_api_history_folds_only_the_touched_index_blocks_and_answers_as_the_scan(env: Env) -> None:
    from kmevents.replay import history
    from kmevents.replay.opening import open_log

    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    tid = next(i for i, t in st.entities("task") if t.get("pod"))
    r = get(env, f"/v1/clusters/{c}/history/tasks/{tid}")
    assert r.headers["X-Kmevents-History"].startswith("indexed: "), r.headers["X-Kmevents-History"]

    async def scan() -> list[dict]:
        async with open_log(env.s, cluster=c) as o:
            rel = await history.related(o.source, c, "task", [tid], None, progress=False)
            return await history.collect(o.source, c, rel, progress=False)

    assert r.json()["events"] == orjson.loads(orjson.dumps(asyncio.run(scan())))


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


# -- issue 14: what a scoped token learns (M2), forged tokens, the stream's start -----------

PROD = {"Authorization": "Bearer prod-only"}


def test_metrics_name_no_cluster_agent_rc_or_service_unless_a_setting_says_so(env: Env) -> None:
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    names = {c} | {i for i, _ in st.entities("agent")} | {str(a["hostname"]) for _, a in st.entities("agent")}
    names |= {i for i, _ in st.entities("rc")} | {i for i, _ in st.entities("service")}
    running = sum(1 for _, t in st.entities("task") if t["state"] == "TASK_RUNNING")
    text = httpx.get(f"{env.url}/metrics", timeout=30).text  # open: no token
    assert f"kmevents_running_tasks {float(running)}" in text
    assert [n for n in sorted(names) if n in text] == []
    s = env.s.model_copy(deep=True)
    s.api.metrics_entity_labels = True
    with Server(s) as url:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    assert f'kmevents_running_tasks{{cluster="{c}"}} {float(running)}' in text
    assert {i for i, _ in st.entities("rc")} <= {n for n in names if f'rc="{n}"' in text}


def test_a_history_shows_a_namespace_limited_token_only_what_it_may_read_directly(env: Env) -> None:
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    tid = next(i for i, t in sorted(st.entities("task"))
               if str(t.get("pod") or "").startswith("prod/") and t.get("offer_id"))
    full = get(env, f"/v1/clusters/{c}/history/tasks/{tid}").json()
    assert any(k.startswith("offer/") for k in full["related"])  # the history follows the task's offer
    assert any(k.startswith("offer/") for e in full["events"] for k in e["results"])
    assert get(env, f"/v1/clusters/{c}/offers", headers=PROD).status_code == 403
    r = get(env, f"/v1/clusters/{c}/history/tasks/{tid}", headers=PROD)
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["count"] > 0 and f"task/{tid}" in h["related"]
    assert {k.split("/", 1)[0] for k in h["related"]} <= {"task", "pod"}
    for e in h["events"]:
        assert e["results"] or e["type"].startswith(("pod.", "k8s_event.", "task.")), e
        for key in e["results"]:
            kind, _, id = key.partition("/")
            assert kind in ("task", "pod"), key
            readable = get(env, f"/v1/clusters/{c}/{kind}s/{id}", headers=PROD)
            assert readable.status_code in (200, 404), (key, readable.text)  # 404: deleted since


def test_a_namespace_limited_token_cannot_tell_whether_an_entity_elsewhere_exists(env: Env) -> None:
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    other_pod = next(i for i, p in sorted(st.entities("pod")) if p["namespace"] != "prod")
    ns = other_pod.split("/", 1)[0]
    other_task = next(i for i, t in sorted(st.entities("task")) if t.get("pod") and not t["pod"].startswith("prod/"))
    own_pod = next(i for i, p in sorted(st.entities("pod")) if p["namespace"] == "prod")
    for point in ({}, {"offset": N_EVENTS - 1}):
        there = get(env, f"/v1/clusters/{c}/pods/{other_pod}", headers=PROD, **point)
        absent = get(env, f"/v1/clusters/{c}/pods/{ns}/no-such-pod", headers=PROD, **point)
        assert (there.status_code, absent.status_code) == (403, 403), point
        assert there.json() == absent.json()
        there = get(env, f"/v1/clusters/{c}/tasks/{other_task}", headers=PROD, **point)
        absent = get(env, f"/v1/clusters/{c}/tasks/no-such-task", headers=PROD, **point)
        assert (there.status_code, absent.status_code) == (404, 404), point
        assert there.json()["detail"].replace(other_task, "ID") == absent.json()["detail"].replace("no-such-task", "ID")
        # its own namespace reads as before
        assert get(env, f"/v1/clusters/{c}/pods/{own_pod}", headers=PROD, **point).status_code == 200
        assert get(env, f"/v1/clusters/{c}/pods/prod/no-such-pod", headers=PROD, **point).status_code == 404
    # time travel tells it nothing of other entities either: no event id or type, no cluster-wide counts
    pos = get(env, f"/v1/clusters/{c}/pods", headers=PROD, offset=N_EVENTS - 2).json()["position"]
    assert pos["last_event"] is not None and get(env, f"/v1/clusters/{c}/pods", offset=N_EVENTS - 2).json()[
        "position"]["last_event"]["type"]
    assert set(pos["last_event"]) == {"offset", "occurred_at", "recorded_at", "ingest_lag_seconds"}
    assert pos["annotations"] == {}


def _forged(doc: object) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def test_forged_or_garbled_continue_tokens_get_422_with_a_message_never_a_500(env: Env) -> None:
    path = f"/v1/clusters/{env.s.cluster}/pods"
    q = "|at=None|known_at=None|offset=None"  # the query of a list without filters
    good = get(env, path, limit=2).json()["continue"]
    assert get(env, path, limit=2, **{"continue": good}).status_code == 200
    tokens = [_forged({"r": r, "k": "pods", "a": "prod/x", "q": q})
              for r in (2**63, 2**64 + 1, 10**30, 10**15, 0, -3, "5", True, 2.5, None)]
    tokens += ["%%%", "e30", _forged([1, 2]), _forged("r"), "A" * 4000, good[:-3], good + "x" * 5]
    for tok in tokens:
        r = get(env, path, limit=2, **{"continue": tok})
        assert r.status_code == 422, (tok[:60], r.status_code, r.text)
        err = r.json()["detail"][0]
        assert err["loc"] == ["query", "continue"] and "continue token" in err["msg"], err


def _stream(env: Env, headers: dict[str, str], **params: object) -> tuple[int, list[str]]:
    with httpx.stream("GET", f"{env.url}/v1/clusters/{env.s.cluster}/events", params=params,
                      headers={**READ, **headers}, timeout=30) as r:
        return r.status_code, [line for line in r.iter_lines() if line]


def test_an_event_stream_resumed_past_the_end_of_the_log_starts_at_the_end(env: Env) -> None:
    for headers, params in (({}, {"from_offset": N_EVENTS + 500}), ({"Last-Event-ID": str(10**12)}, {}),
                            ({"Last-Event-ID": str(N_EVENTS - 1)}, {})):
        status, lines = _stream(env, headers, limit=1, max_seconds=3, **params)
        assert status == 200
        assert not [x for x in lines if x.startswith("id:")], (headers, params, lines[:3])  # nothing replayed
        assert any(f"from offset {N_EVENTS}" in x for x in lines), lines[:3]
    for bad_id in ("-1", "abc", "1.5", "", str(2**64)):
        r = httpx.get(f"{env.url}/v1/clusters/{env.s.cluster}/events", params={"max_seconds": 1},
                      headers={**READ, "Last-Event-ID": bad_id}, timeout=30)
        assert r.status_code == 422, (bad_id, r.text)
        assert r.json()["detail"][0]["loc"] == ["header", "last-event-id"]


# -- issue 14: bounded replays (H4) and an unreachable stack -------------------------------


def _gauge(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} "))


def test_concurrent_point_in_time_reads_beyond_the_bounds_get_429_and_the_held_bytes_stay_bounded(env: Env) -> None:
    from collections import Counter

    from kmevents.replay.warm import estimate_bytes

    c = env.s.cluster
    one_state = estimate_bytes(fold(env.events, cluster=c)[0])
    s = env.s.model_copy(deep=True)
    s.api.max_concurrent_replays = 1
    s.api.max_queued_replays = 2
    s.api.replay_cache_bytes = int(2.5 * one_state)
    s.api.replay_state_every = 250  # many held states: the byte budget must evict
    held_at = 1500
    offsets = [o for o in range(37, N_EVENTS, 97) if o != held_at]
    with Server(s) as url:
        path = f"{url}/v1/clusters/{c}/tasks"
        assert httpx.get(path, params={"offset": held_at, "limit": 1000}, headers=READ, timeout=60).status_code == 200
        limit = _gauge(httpx.get(f"{url}/metrics", timeout=30).text, "kmevents_replay_cache_limit_bytes")
        assert limit == s.api.replay_cache_bytes
        held: list[float] = []

        async def burst() -> list[tuple[int, httpx.Response]]:
            async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as client:
                async def read(o: int) -> tuple[int, httpx.Response]:
                    return o, await client.get(path, params={"offset": o, "limit": 1000}, headers=READ)

                async def watch() -> None:
                    while True:
                        held.append(_gauge((await client.get(f"{url}/metrics")).text, "kmevents_replay_cache_bytes"))
                        await asyncio.sleep(0.2)

                w = asyncio.create_task(watch())
                try:  # reads of the held state first: they pass no gate, whatever waits
                    return await asyncio.gather(*(read(o) for o in [held_at] * 3 + offsets))
                finally:
                    w.cancel()

        got = asyncio.run(burst())
        codes = Counter(r.status_code for _, r in got)
        assert set(codes) <= {200, 429} and codes[429] > 0 and codes[200] >= 3, codes
        assert all(r.status_code == 200 for o, r in got if o == held_at)
        for _, r in got:
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1 and "api.max_concurrent_replays" in r.json()["detail"]
        text = httpx.get(f"{url}/metrics", timeout=30).text
        held.append(_gauge(text, "kmevents_replay_cache_bytes"))
        assert 0 < max(held) <= limit, held
        assert 'kmevents_replays_refused_total{gate="cold",status="429"}' in text
        # what was refused is served when asked again one by one, and equals the fold of its prefix
        refused = [o for o, r in got if r.status_code == 429]
        for o in refused[:3]:
            r = httpx.get(path, params={"offset": o, "limit": 1000}, headers=READ, timeout=60)
            assert r.status_code == 200, r.text
            want, _ = fold(env.events[:o + 1], cluster=c)
            assert {t["id"]: t["state"] for t in r.json()["items"]} == {i: t["state"] for i, t in want.entities("task")}
        assert _gauge(httpx.get(f"{url}/metrics", timeout=30).text, "kmevents_replay_cache_bytes") <= limit


def _closed_port() -> int:
    from kmevents.stack.process import free_port

    return free_port()


ENDPOINTS = ["/metrics", "/v1/clusters", "/v1/clusters/{c}/pods", "/v1/clusters/{c}/pods/prod/web-1",
             "/v1/clusters/{c}/master", "/v1/clusters/{c}/tasks?offset=3", "/v1/clusters/{c}/pods?at=-1h",
             "/v1/clusters/{c}/history/pods/prod/web-1", "/v1/clusters/{c}/search?type=pod.*",
             "/v1/clusters/{c}/archive", "/v1/clusters/{c}/events?max_seconds=2"]


def _assert_503(r: httpx.Response, what: str, names: str) -> None:
    assert r.status_code == 503, (what, r.status_code, r.text)
    assert int(r.headers["Retry-After"]) >= 1, what
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) <= 300, (what, detail)
    assert names in detail and "Traceback" not in detail, (what, detail)


def test_with_kafka_and_etcd_unreachable_the_api_starts_and_every_endpoint_answers_503_in_one_line(
        tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    import time

    kafka, etcd, port = f"127.0.0.1:{_closed_port()}", f"http://127.0.0.1:{_closed_port()}", _closed_port()
    env = {**os.environ, "KMEVENTS_KAFKA__BOOTSTRAP": kafka, "KMEVENTS_ETCD__ENDPOINT": etcd,
           "KMEVENTS_API__TOKENS": json.dumps([{"token": "t", "scopes": ["read", "ingest"]}])}
    err = (tmp_path / "stderr").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "kmevents.cli", "api", "--port", str(port)], env=env,
                            stdout=err, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            try:
                assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200  # alive: a supervisor keeps it
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        auth = {"Authorization": "Bearer t"}
        r = httpx.get(f"{url}/readyz", timeout=30)
        assert r.status_code == 503 and r.json()["detail"].startswith("not ready: Kafka at"), r.text
        for path in ENDPOINTS:
            path = path.format(c="prod")
            _assert_503(httpx.get(f"{url}{path}", headers=auth, timeout=60), path, "etcd at")
        r = httpx.post(f"{url}/v1/events", headers=auth, json=[{"type": "x"}], timeout=60)
        _assert_503(r, "POST /v1/events", f"Kafka at {kafka}")
    finally:
        proc.terminate()
        proc.wait(30)
        err.close()
    log = (tmp_path / "stderr").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "ingest not started" in log


def test_with_kafka_unreachable_live_reads_still_answer_and_reads_of_the_log_answer_503(env: Env) -> None:
    s = env.s.model_copy(deep=True)
    s.kafka.bootstrap = f"127.0.0.1:{_closed_port()}"
    c = env.s.cluster
    with Server(s) as url:
        assert httpx.get(f"{url}/v1/clusters/{c}/pods", headers=READ, timeout=30).status_code == 200
        for path in ("/v1/clusters/{c}/tasks?offset=3", "/v1/clusters/{c}/pods?at=-1h",
                     "/v1/clusters/{c}/history/pods/prod/web-1", "/v1/clusters/{c}/search?type=pod.*",
                     "/v1/clusters/{c}/archive", "/v1/clusters/{c}/events?max_seconds=2"):
            path = path.format(c=c)
            _assert_503(httpx.get(f"{url}{path}", headers=READ, timeout=60), path, f"Kafka at {s.kafka.bootstrap}")
        r = httpx.post(f"{url}/v1/events", headers={"Authorization": "Bearer ingest-token"}, json=[{}], timeout=60)
        _assert_503(r, "POST /v1/events", "Kafka at")
        r = httpx.get(f"{url}/readyz", timeout=30)
        assert r.status_code == 503 and "Kafka at" in r.json()["detail"]


def test_every_entity_read_carries_its_condition_so_a_deleted_pod_is_not_running(env: Env) -> None:
    """Issue 18: a deleted pod kept `phase: Running`, so `select(.phase=="Running")` counted 4x the
    running pods: lists and single reads, live and in the past, carry the computed condition."""
    c = env.s.cluster
    st, _ = fold(env.events, cluster=c)
    gone = {i for i, p in st.entities("pod") if p.get("deleted") and p.get("phase") == "Running"}
    assert gone
    for params in ({}, {"offset": N_EVENTS - 1}):
        items = get(env, f"/v1/clusters/{c}/pods", limit=1000, **params).json()["items"]
        assert all(p["condition"] == condition(st.entity("pod", p["id"])) for p in items)
        assert {p["id"] for p in items if p["condition"] == "Deleted" and p["phase"] == "Running"} == gone
        one = get(env, f"/v1/clusters/{c}/pods/{sorted(gone)[0]}", **params).json()["value"]
        assert one["condition"] == "Deleted"
    tasks = get(env, f"/v1/clusters/{c}/tasks", limit=1000).json()["items"]
    assert all(t["condition"] == t["state"] for t in tasks)


def test_the_api_search_from_a_time_finds_what_a_scan_from_the_first_record_finds(env: Env) -> None:
    """``/search?from=TIME&agent=HOST``: the worker's index and host directory bound the scan
    (replay/search.py); the hits, those naming only the agent's id included, are a whole scan's."""
    from kmevents.replay import logsource, search

    from kmevents.timespec import Point, parse_time
    from tests.integration.test_replay import all_records, kafka_src
    from tests.integration.test_search_from_index import _host_of_id_only_hit

    s = env.s
    p = asyncio.run(logsource.partition_of(s, s.cluster))
    assert p is not None
    recs = asyncio.run(all_records(kafka_src(s, p)))
    offset, when, host = _host_of_id_only_hit(recs, 0.5)
    r = get(env, f"/v1/clusters/{s.cluster}/search", agent=host, limit=10_000, **{"from": when})
    assert r.status_code == 200, r.text
    f = search.Filters(agent=host, start=Point(time=parse_time(when)))
    whole = asyncio.run(search.search(kafka_src(s, p), f))
    got = r.json()["events"]
    assert [h["offset"] for h in got] == [h["offset"] for h in whole] and offset in {h["offset"] for h in got}
    assert [h["object"] for h in got] == [h["object"] for h in whole]
