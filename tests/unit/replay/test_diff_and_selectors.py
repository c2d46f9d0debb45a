"""Field-level diffs of entities and states; Kubernetes label selectors."""

from __future__ import annotations

import pytest
from kmevents.replay.diffing import diff_tables, field_changes

from kmevents.errors import UsageError
from kmevents.selectors import parse


def test_field_changes_name_nested_paths_and_list_positions() -> None:
    a = {"state": "TASK_RUNNING", "status": {"reason": None}, "ports": [{"port": 80}, {"port": 81}]}
    b = {"state": "TASK_LOST", "status": {"reason": "REASON_AGENT_REMOVED"}, "ports": [{"port": 80}, {"port": 82}]}
    got = [(c.path, c.before, c.after) for c in field_changes(a, b)]
    assert got == [("ports[1].port", 81, 82), ("state", "TASK_RUNNING", "TASK_LOST"),
                   ("status.reason", None, "REASON_AGENT_REMOVED")]


def test_state_diff_separates_added_removed_and_changed() -> None:
    before = {"task": {"t1": {"state": "TASK_RUNNING"}, "t2": {"state": "TASK_STAGING"}}}
    after = {"task": {"t1": {"state": "TASK_LOST"}, "t3": {"state": "TASK_STAGING"}}, "pod": {"p": {}}}
    d = diff_tables(before, after)
    assert d.counts() == {"pod": {"added": 1, "removed": 0, "changed": 0},
                          "task": {"added": 1, "removed": 1, "changed": 1}}
    assert d.changed["task"]["t1"][0].after == "TASK_LOST"
    assert diff_tables(before, before).empty


@pytest.mark.parametrize(("sel", "labels", "ok"), [
    ("app=mysql", {"app": "mysql"}, True),
    ("app==mysql,tier!=cache", {"app": "mysql", "tier": "cache"}, False),
    ("env in (prod, qa)", {"env": "qa"}, True),
    ("env notin (prod)", {}, True),
    ("release", {"release": "x"}, True),
    ("!canary", {"canary": "1"}, False),
    ("app=mysql,env in (a,b)", {"app": "mysql", "env": "c"}, False),
])
def test_label_selectors(sel: str, labels: dict[str, str], ok: bool) -> None:
    assert parse(sel).matches(labels) is ok


def test_an_unreadable_selector_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse("app=(x")
