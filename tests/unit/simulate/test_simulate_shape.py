"""``Shape`` reads a log's concurrency, task ends and pace from the events alone."""

from __future__ import annotations

from typing import Any

from kmevents.simulate.shape import Shape

FW = "F"


def _ev(type_: str, at: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "occurred_at": f"2026-01-01T00:{at}.000000Z", "payload": payload}


def _launch(tid: str, uid: str | None, at: str, type_: str = "task.launched",
            state: str | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"task_id": tid, "framework_id": FW,
                            "pod": None if uid is None else {"uid": uid}}
    if state is not None:
        task["state"] = state
    return _ev(type_, at, {"task": task})


def _status(tid: str, state: str, at: str) -> dict[str, Any]:
    return _ev("task.status_updated", at, {"framework_id": FW,
                                           "status": {"task_id": tid, "state": state}})


def test_ends_concurrency_and_pace_are_read_from_the_events() -> None:
    events = [
        _ev("agent.added", "00:00", {"agent": {"id": "a1"}}),
        _ev("agent.added", "00:00", {"agent": {"id": "a2"}}),
        _launch("t1", "u1", "00:00", "task.added", "TASK_RUNNING"),
        _launch("t2", "u2", "00:00", "task.added", "TASK_RUNNING"),
        # the start is the four events above; the window runs from 00:10 to 01:10
        _launch("t3", "u3", "00:10"),
        _status("t3", "TASK_RUNNING", "00:20"),
        _status("t3", "TASK_RUNNING", "00:21"),       # a re-delivery: no change
        _launch("m1", None, "00:22"),                   # no pod: not a pod task
        _status("m1", "TASK_RUNNING", "00:23"),
        _ev("pod.evicted", "00:30", {"pod": {"uid": "u2"}}),
        _status("t2", "TASK_FAILED", "00:31"),         # evicted by the kubelet
        _status("t1", "TASK_FINISHED", "00:40"),
        _status("t1", "TASK_RUNNING", "00:41"),        # after a terminal state: ignored
        _status("t3", "TASK_LOST", "00:50"),
        _ev("agent.removed", "01:10", {"agent_id": "a2"}),
    ]
    shape = Shape(bootstrap=4)
    for e in events:
        shape.add(e)
    r = shape.report()
    assert r["pod_tasks_seen"] == 3
    assert r["max_running_pod_tasks"] == 3 and r["running_pod_tasks_at_end"] == 0
    assert r["ends"] == {"FINISHED": 1, "KILLED": 0, "EVICTED": 1, "FAILED": 0, "LOST": 1}
    assert r["end_shares"]["FINISHED"] == round(1 / 3, 5)
    assert r["running_through_share"] == 0.0
    assert (r["max_agents"], r["agents_at_end"]) == (2, 1)
    assert r["bootstrap_events"] == 4
    assert r["source_seconds"] == 60.0
    assert r["events_per_second"] == round((len(events) - 4 - 1) / 60.0, 3)
