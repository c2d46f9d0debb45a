"""Causal sanity: nothing happens to a thing before it exists, or after it is gone."""

from __future__ import annotations

from typing import Any


def test_status_updates_come_after_the_launch(run_events: list[dict[str, Any]]) -> None:
    launched: dict[str, str] = {}
    for e in run_events:
        if e["type"] == "task.launched":
            launched[e["payload"]["task"]["task_id"]] = e["occurred_at"]
        elif e["type"] == "task.status_updated":
            s = e["payload"]["status"]
            assert s["task_id"] in launched, f"status for unlaunched task {s['task_id']}"
            assert e["occurred_at"] >= launched[s["task_id"]]
            assert e["causation_id"] is not None


def test_tasks_run_on_agents_that_exist(run_events: list[dict[str, Any]]) -> None:
    added: set[str] = set()
    for e in run_events:
        if e["type"] == "agent.added":
            added.add(e["payload"]["agent"]["id"])
        elif e["type"] == "task.launched":
            assert e["payload"]["task"]["agent_id"] in added
        elif e["type"] == "task.status_updated":
            assert e["payload"]["status"]["agent_id"] in added
        elif e["type"] == "agent.removed":
            assert e["payload"]["agent_id"] in added


def test_a_lost_agent_offers_and_launches_nothing_until_it_returns(
        run_events: list[dict[str, Any]]) -> None:
    down: set[str] = set()
    for e in run_events:
        p = e["payload"]
        if e["type"] == "agent.removed":
            down.add(p["agent_id"])
        elif e["type"] in ("agent.reregistered", "agent.added"):
            down.discard(p["agent"]["id"])
        elif e["type"] == "offer.offered":
            assert p["offer"]["agent_id"] not in down
        elif e["type"] == "task.launched":
            assert p["task"]["agent_id"] not in down


def test_offers_are_answered_once_and_only_after_being_made(run_events: list[dict[str, Any]]) -> None:
    offered: set[str] = set()
    answered: dict[str, str] = {}
    for e in run_events:
        t = e["type"]
        if t == "offer.offered":
            offered.add(e["payload"]["offer"]["id"])
        elif t in ("offer.accepted", "offer.declined"):
            oid = e["payload"]["offer_id"]
            assert oid in offered
            assert oid not in answered, f"{oid} {t} after {answered.get(oid)}"
            answered[oid] = t
        elif t == "task.launched" and e["payload"]["offer_id"] is not None:
            assert answered.get(e["payload"]["offer_id"]) == "offer.accepted"


def test_pods_have_a_life_in_order(run_events: list[dict[str, Any]]) -> None:
    created: set[str] = set()
    deleted: set[str] = set()
    for e in run_events:
        t = e["type"]
        if not t.startswith("pod."):
            continue
        uid = e["payload"]["pod"]["uid"]
        assert uid not in deleted, f"{t} after pod.deleted"
        if t == "pod.upserted":
            created.add(uid)
        else:
            assert uid in created, f"{t} before the pod was created"
        if t == "pod.deleted":
            deleted.add(uid)
    assert deleted


def test_a_pod_is_scheduled_at_most_once_per_task(run_events: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for e in run_events:
        if e["type"] == "pod.scheduled":
            assert e["payload"]["pod"]["uid"] not in seen
            seen.add(e["payload"]["pod"]["uid"])


def test_terminal_tasks_stay_terminal_except_through_the_master(
        run_events: list[dict[str, Any]]) -> None:
    terminal = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"}
    done: dict[str, str] = {}
    for e in run_events:
        if e["type"] != "task.status_updated":
            continue
        s = e["payload"]["status"]
        if s["task_id"] in done:
            # only a re-delivery of the terminal update itself may follow it
            assert s["uuid"] == done[s["task_id"]], s
        elif s["state"] in terminal:
            done[s["task_id"]] = s["uuid"]


def test_a_retry_never_overtakes_a_newer_update_of_its_task(
        run_events: list[dict[str, Any]]) -> None:
    latest: dict[str, str] = {}
    seen: set[str] = set()
    retried = 0
    for e in run_events:
        if e["type"] != "task.status_updated" or e["payload"]["status"]["uuid"] is None:
            continue
        tid = e["payload"]["status"]["task_id"]
        if e["event_id"] in seen:
            assert e["event_id"] == latest[tid], "a retry of an update that was superseded"
            retried += 1
        seen.add(e["event_id"])
        latest[tid] = e["event_id"]
    assert retried > 0
