"""The Guard: every record counted, a record a parser fails on quarantined at its position and the
stream going on, a parser's own quarantine drained, skip reasons attributed to the right source;
and the quarantine record's form with secrets masked."""

from __future__ import annotations

import base64
import logging
from typing import Any

import orjson
import pytest

from kmevents.ingest.redact_rules import MASK, SecretRules
from kmevents.sources._common import Outcomes, Stream
from kmevents.sources.guard import Guard, Held
from kmevents.sources.kubernetes import KubernetesParser
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.quarantine import mask_record, quarantine_key, quarantine_value
from kmevents.sources.summary import Summary
from tests.unit.sources._helpers import CLUSTER, fixed_now, load, ndjson


def test_a_record_the_parser_fails_on_is_quarantined_at_its_position_and_the_next_one_is_read(
        caplog: pytest.LogCaptureFixture) -> None:
    s = Summary("follow mesos-state")
    g = Guard(s)
    p = StateParser(CLUSTER, now=fixed_now)
    g.wrap(p, "feed", kind="mesos.state", source="mesos-state", raw=lambda state, *a, **k: state)
    first = p.feed(load("mesos/master_state_1.json"))
    # A parser bug the parser's own checks miss (they quarantine a listing that is not an
    # object themselves now): the guard catches what escapes.
    real = p.differ.observe

    def broken_differ(snap: object, *a: object) -> object:
        raise AttributeError("'list' object has no attribute 'get'")

    p.differ.observe = broken_differ  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "kmevents.sources"):
        broken = p.feed(load("mesos/master_state_1.json"))
    p.differ.observe = real  # type: ignore[method-assign]
    then = p.feed(load("mesos/master_state_2.json"))
    assert first and broken == [] and then
    assert [e["source"]["seq"] for e in then if e["type"] == "cluster.snapshot_observed"] == [2]
    t = s.tally("mesos-state")
    assert (t.records, t.with_events, t.quarantined) == (3, 2, 1)
    (held,) = g.take()
    assert (held.record.stream_id, held.record.seq, held.source, held.kind) == ("master-state", 1, "mesos-state",
                                                                                "mesos.state")
    assert held.record.raw.startswith(b"{")
    assert held.record.reason.startswith("AttributeError: ")
    assert g.take() == []
    logged = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None, "logged once, with its traceback"


class SelfQuarantining:
    """A parser of the issue-16 interface: it catches its own failures into ``outcomes``."""

    def __init__(self) -> None:
        self.outcomes = Outcomes()
        self.stream = Stream(CLUSTER, "k8s.audit", "audit", now=fixed_now)

    def feed(self, record: Any) -> list[dict[str, Any]]:
        self.stream.record()
        if record == "bad":
            self.outcomes.quarantine(self.stream.stream_id, self.stream.seq, record, "unknown apiVersion")
            return []
        if record == "skip":
            self.outcomes.skipped.add("get pods (200)")
            return []
        return [{"type": "x"}]


def test_a_parsers_own_quarantine_and_skips_are_drained_and_counted() -> None:
    s = Summary("import k8s-audit")
    g = Guard(s)
    p = SelfQuarantining()
    for r in ("ok", "bad", "skip", "ok"):
        g.call(p, "audit.log", "k8s.audit", p.feed, r, r, origin=f"audit.log:{r}")
    t = s.tally("audit.log")
    assert (t.records, t.with_events, t.quarantined, t.skipped, t.unexplained) == (4, 2, 1, {"get pods (200)": 1}, 0)
    (held,) = g.take()
    assert (held.record.seq, held.record.raw, held.origin) == (1, b"bad", "audit.log:bad")
    assert p.outcomes.quarantined == []


def test_skip_reasons_of_a_shared_parser_go_to_the_source_whose_record_gave_them() -> None:
    s = Summary("follow k8s")
    g = Guard(s)
    kp = KubernetesParser(CLUSTER, now=fixed_now)
    g.wrap(kp, "feed", kind="k8s.watch", source=lambda r, *a, **k: f"k8s/{r}", raw=lambda r, ev, *a, **k: ev)
    for ev in ndjson("k8s/pods_watch.ndjson"):
        kp.feed("pods", ev)
    kp.feed("widgets", {"type": "ADDED", "object": {"kind": "Widget", "metadata": {"name": "w"}}})
    kp.feed("pods", {"type": "WHATEVER", "object": {}})
    pods, widgets = s.tally("k8s/pods"), s.tally("k8s/widgets")
    assert widgets.records == 1 and widgets.quarantined + widgets.skipped_total == 1
    # (the sample's BOOKMARK is a counted skip since the k8s parser counts every record)
    assert pods.skipped == {"pods watch event 'WHATEVER'": 1, "BOOKMARK (only the resourceVersion moves)": 1}
    assert pods.records == len(ndjson("k8s/pods_watch.ndjson")) + 1


def test_a_record_the_reader_cannot_read_counts_as_a_record_and_is_held() -> None:
    s = Summary("import k8s-audit")
    g = Guard(s)
    g.quarantine("audit.log", "k8s.audit", "file:audit.log", 7, b'{"kind": "Ev', "line is not JSON", origin="audit.log:8")
    g.skip("audit.log", "state of a master that was not leading")
    t = s.tally("audit.log")
    assert (t.records, t.quarantined, t.skipped_total, t.unexplained) == (2, 1, 1, 0)
    assert [h.origin for h in g.take()] == ["audit.log:8"]


# ---- the quarantine record -----------------------------------------------------------------

RULES = SecretRules()


def test_secrets_in_a_quarantined_json_record_are_masked_and_counted() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "db", "annotations": {"example.com/token": "s3cr3t-tok"}},
           "spec": {"containers": [{"name": "db", "env": [{"name": "DB_PASSWORD", "value": "hunter2"},
                                                          {"name": "MODE", "value": "primary"}],
                                    "args": ["--dsn=postgres://app:pa55w0rd@db:5432/x"]}],
                    "volumes": [{"name": "creds", "secret": {"secretName": "db-creds"}}]}}
    secret = {"kind": "Secret", "metadata": {"name": "db-creds"}, "data": {"config.yaml": "c2VjcmV0"}}
    raw, n = mask_record(orjson.dumps({"items": [pod, secret]}), RULES)
    text = raw.decode()
    for leaked in ("s3cr3t-tok", "hunter2", "pa55w0rd", "c2VjcmV0"):
        assert leaked not in text
    for kept in ("primary", "db-creds", "DB_PASSWORD", "secretName"):
        assert kept in text
    assert n == 4 and text.count(MASK) == 4


def test_a_record_with_nothing_to_mask_keeps_its_exact_bytes_and_text_records_are_masked_too() -> None:
    raw = b'{ "type" : "HEARTBEAT" }'
    assert mask_record(raw, RULES) == (raw, 0)
    masked, n = mask_record(b"not json: Authorization: Bearer abcdefghijklmnop", RULES)
    assert b"abcdefghijklmnop" not in masked and n == 1
    assert mask_record(b"\xff\xfe plain bytes", RULES) == (b"\xff\xfe plain bytes", 0)


def test_the_quarantine_record_is_keyed_by_stream_and_seq_and_holds_the_masked_raw_record() -> None:
    from kmevents.sources._common import Quarantined

    held = Held(Quarantined("audit.log", 41, "KeyError: 'user'", b'{"password": "x", "verb": "get"}'),
                "logs/", "k8s.audit", "logs/audit.log:42")
    assert quarantine_key(held) == b"audit.log:41"
    v = quarantine_value(held, cluster="prod", rules=RULES, at="2015-07-08T15:05:00.000000Z")
    assert orjson.loads(base64.b64decode(v["raw_b64"])) == {"password": MASK, "verb": "get"}
    assert {k: v[k] for k in ("stream_id", "seq", "reason", "cluster", "source", "kind", "origin", "masked")} == {
        "stream_id": "audit.log", "seq": 41, "reason": "KeyError: 'user'", "cluster": "prod", "source": "logs/",
        "kind": "k8s.audit", "origin": "logs/audit.log:42", "masked": 1}


def test_a_poll_that_is_not_a_leading_masters_state_never_reaches_the_differ() -> None:
    # Diffed, an error answer or a standby master's empty state would read as every agent,
    # framework and task removed.
    from kmevents.sources.prechecks import leading_master_state

    s = Summary("follow mesos-state")
    g = Guard(s)
    p = StateParser(CLUSTER, now=fixed_now)
    g.wrap(p, "feed", kind="mesos.state", source="mesos-state", raw=lambda state, *a, **k: state,
           precheck=lambda state, *a, **k: leading_master_state(state))
    first = load("mesos/master_state_1.json")
    standby = first | {"frameworks": [], "slaves": [], "pid": "master@10.0.0.9:5050"}
    out = [e for doc in (first, {"message": "Service Unavailable"}, standby, load("mesos/master_state_2.json"))
           for e in p.feed(doc)]
    assert not [e for e in out if e["type"] in ("agent.removed", "framework.removed")]
    assert [e["source"]["seq"] for e in out if e["type"] == "cluster.snapshot_observed"] == [0, 3]
    t = s.tally("mesos-state")
    assert (t.records, t.quarantined, t.skipped) == (4, 1, {"state of a master that was not leading": 1})
    (held,) = g.take()
    assert (held.record.seq, held.record.reason) == (1, "not a Mesos master state (no 'frameworks' and 'slaves' "
                                                        "lists: an agent's /state, an error answer, or another document)")


def test_a_parser_method_called_with_a_keyword_named_like_the_guards_own_is_still_guarded() -> None:
    # StateParser.feed_bytes calls feed(state, seq, raw=body): with the guard's `raw` parameter
    # positional-or-keyword, every guarded poll raised TypeError and the follow restarted forever.
    s = Summary("follow mesos-state")
    g = Guard(s)
    p = StateParser(CLUSTER, now=fixed_now)
    g.wrap(p, "feed", kind="mesos.state", source="mesos-state", raw=lambda state, *a, **k: state)
    out = p.feed_bytes(orjson.dumps(load("mesos/master_state_1.json")))
    assert out and s.tally("mesos-state").records == 1
