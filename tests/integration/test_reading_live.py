"""`kmevents get` and `kmevents clusters` on a real Kafka + etcd (issue 18): live reads from etcd,
the replay when etcd holds nothing derived, and the clusters' partitions, checkpoints and spans."""

from __future__ import annotations

import orjson
from kmevents.replay.engine import Target, replay
from kmevents.replay.sources import KafkaSource

from kmevents.reducer import condition
from kmevents.settings import Settings
from tests.integration.test_processors import ingest_sim
from tests.integration.test_replay import cli, derived


async def test_get_reads_the_live_state_from_etcd_and_agrees_with_a_replay(isolated: Settings) -> None:
    p = await derived(isolated, 3000)
    r = cli(isolated, "get", "pods", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = orjson.loads(r.stdout)
    assert doc["source"] == "etcd" and doc["checkpoint"]["offset"] >= 0 and doc["checkpoint"]["partition"] == p
    rep = await replay(KafkaSource(isolated.kafka, isolated.kafka.events_topic, p, isolated.cluster),
                       isolated.cluster, Target(), progress=False)
    alive = {i: v for i, v in rep.state.entities("pod") if v.get("deleted") is None}
    assert {it["id"] for it in doc["items"]} == set(alive)
    assert all(it["condition"] == condition(alive[it["id"]]) for it in doc["items"])
    table = cli(isolated, "get", "agents")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:2] == ["NAME", "STATUS"]
    assert "live state from etcd (checkpoint offset" in table.stderr


async def test_get_replays_the_log_when_etcd_holds_no_derived_state(isolated: Settings) -> None:
    await ingest_sim(isolated, isolated.cluster, 500)  # ingested, never processed
    r = cli(isolated, "get", "agents")
    assert r.returncode == 0, r.stderr
    assert "holds no derived state" in r.stderr and "replaying the log instead" in r.stderr
    assert len(r.stdout.splitlines()) > 1


async def test_get_an_unknown_cluster_is_a_usage_error(isolated: Settings) -> None:
    await derived(isolated, 300)
    r = cli(isolated, "get", "pods", "--cluster", "no-such-cluster")
    assert r.returncode == 2 and "is unknown to etcd" in r.stderr and "kmevents clusters" in r.stderr


async def test_clusters_lists_partition_checkpoint_and_the_first_and_last_event(isolated: Settings) -> None:
    p = await derived(isolated, 2000)
    other = isolated.model_copy(deep=True)
    other.cluster = isolated.cluster + "-b"
    await ingest_sim(other, other.cluster, 300, seed=2)  # ingested, not derived
    r = cli(isolated, "clusters", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = {c["name"]: c for c in orjson.loads(r.stdout)["clusters"]}
    a, b = rows[isolated.cluster], rows[other.cluster]
    assert a["partition"] == p and a["checkpoint"] is not None
    assert a["first_event"]["occurred_at"] <= a["last_event"]["occurred_at"]
    assert a["first_event"]["type"] and a["last_event"]["offset"] >= a["first_event"]["offset"]
    assert b["first_event"] is not None and b["last_event"] is not None
    if b["partition"] != p:
        assert b["checkpoint"] is None  # nothing derived of its partition
    table = cli(isolated, "clusters")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["NAME", "PARTITION", "CHECKPOINT", "BEHIND", "FIRST", "EVENT",
                                                    "LAST", "EVENT"]


async def test_clusters_with_kafka_down_still_lists_what_etcd_knows_and_says_why_not_more(
        isolated: Settings) -> None:
    await derived(isolated, 300)
    r = cli(isolated, "clusters", "--bootstrap", "127.0.0.1:9")
    assert r.returncode == 1
    row = next(line.split() for line in r.stdout.splitlines() if line.startswith(isolated.cluster + " "))
    assert row[2] != "<none>"  # the checkpoint, from etcd
    assert "cannot be read" in r.stderr and "no first/last events" in r.stderr
    assert "Unclosed AIOKafkaConsumer" not in r.stderr  # a consumer whose start failed is stopped
