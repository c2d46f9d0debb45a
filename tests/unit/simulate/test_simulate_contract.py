"""Every simulated event is what the contract accepts, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from kmevents.contract import (
    ContractViolation,
    dedupe_key,
    derive_event_id,
    encode,
    validate_event,
)
from kmevents.contract.registry import SCHEMA_VERSIONS

ENVELOPE_KEYS = {"event_id", "type", "schema_version", "cluster", "source", "occurred_at",
                 "clock", "raw_type", "actor", "correlation_id", "causation_id", "dedupe_key",
                 "redacted", "payload"}


def test_every_event_of_a_20k_run_validates_strictly_without_warnings(
        run_events: list[dict[str, Any]]) -> None:
    problems: list[str] = []
    for i, event in enumerate(run_events[:20_000]):
        try:
            _, warnings = validate_event(event)
        except ContractViolation as exc:
            problems.append(f"#{i} {event['type']}: {exc}")
            continue
        if warnings:
            problems.append(f"#{i} {event['type']}: warnings {warnings}")
    assert not problems, "\n".join(problems[:10])


def test_dedupe_keys_and_event_ids_follow_the_contract_recipes(
        run_events: list[dict[str, Any]]) -> None:
    for event in run_events[:20_000]:
        assert event["dedupe_key"] == dedupe_key(event), event["type"]
        assert event["event_id"] == derive_event_id(event["cluster"], event["dedupe_key"])


def test_lines_are_the_contracts_canonical_encoding(run_lines: list[bytes],
                                                     run_events: list[dict[str, Any]]) -> None:
    for line, event in zip(run_lines[:20_000], run_events[:20_000], strict=True):
        canonical, _ = validate_event(event)
        assert encode(canonical).rstrip(b"\n") == line.rstrip(b"\n"), event["type"]


def test_envelope_shape_and_current_schema_versions(run_events: list[dict[str, Any]]) -> None:
    for event in run_events:
        assert set(event) == ENVELOPE_KEYS
        assert event["schema_version"] == SCHEMA_VERSIONS[event["type"]]
        assert event["source"]["kind"] == "simulator"
        assert event["redacted"] == []


@pytest.mark.parametrize("clock", ["agent", "master", "apiserver", "scheduler"])
def test_each_source_clock_is_used(run_events: list[dict[str, Any]], clock: str) -> None:
    assert any(e["clock"] == clock for e in run_events)


def test_clock_follows_the_source(run_events: list[dict[str, Any]]) -> None:
    expected = {"pod.upserted": "apiserver", "endpoints.observed": "apiserver",
                "offer.offered": "master", "agent.removed": "master", "task.launched": "scheduler",
                "offer.expired": "scheduler", "scheduler.leader_elected": "scheduler"}
    for event in run_events:
        want = expected.get(event["type"])
        if want:
            assert event["clock"] == want, event["type"]
        if event["type"] == "task.status_updated":
            source = event["payload"]["status"]["source"]
            assert event["clock"] == ("master" if source == "SOURCE_MASTER" else "agent")


def test_status_occurred_at_is_the_status_timestamp(run_events: list[dict[str, Any]]) -> None:
    import datetime as dt

    for event in run_events[:5000]:
        if event["type"] != "task.status_updated":
            continue
        ts = event["payload"]["status"]["timestamp"]
        as_text = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert as_text == event["occurred_at"]


def test_each_stream_has_gap_free_sequence_numbers(run_events: list[dict[str, Any]]) -> None:
    last: dict[str, int] = {}
    for event in run_events:
        src = event["source"]
        assert src["seq"] == last.get(src["stream_id"], 0) + 1
        last[src["stream_id"]] = src["seq"]
    assert set(last) == {"simtest/mesos", "simtest/k8s", "simtest/k8sm"}
