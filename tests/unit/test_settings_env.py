"""``child_env``: the variables that point a ``kmevents`` child at a parent's settings load back into
the same servers, topics, prefix and cluster."""

from __future__ import annotations

import os
from unittest import mock

from kmevents.settings import child_env, load


def test_a_child_loads_the_parents_servers_topics_prefix_and_cluster() -> None:
    s = load({"kafka.bootstrap": "127.0.0.1:19092", "etcd.endpoint": "http://127.0.0.1:12379",
              "kafka.events_topic": "t.events", "kafka.snapshots_topic": "t.snapshots",
              "kafka.deadletter_topic": "t.dlq", "kafka.alerts_topic": "t.alerts",
              "kafka.quarantine_topic": "t.quarantine", "etcd.prefix": "/t/kmevents/v1", "cluster": "prod-1"})
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KMEVENTS_")}
    with mock.patch.dict(os.environ, {**clean, **child_env(s, cluster=True)}, clear=True):
        child = load()
    for section, fields in (("kafka", ("bootstrap", "events_topic", "snapshots_topic", "deadletter_topic",
                                       "alerts_topic", "quarantine_topic")), ("etcd", ("endpoint", "prefix"))):
        for f in fields:
            assert getattr(getattr(child, section), f) == getattr(getattr(s, section), f), f"{section}.{f}"
    assert child.cluster == "prod-1"
    assert "KMEVENTS_CLUSTER" not in child_env(s)
