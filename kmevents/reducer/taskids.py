"""The task-id index: a Mesos task id (unique only within its framework) -> the task entities
that carry it (``<framework_id>/<task_id>``). Derived from the entities: kept as tasks come
and go (including when retention prunes one), rebuilt when a snapshot is loaded."""

from __future__ import annotations

from kmevents.reducer.packed import raw_items
from kmevents.reducer.state import ClusterState


def index_task(st: ClusterState, task_id: str, key: str) -> None:
    keys = st._task_keys.get(task_id)
    if keys is None:
        st._task_keys[task_id] = [key]
    elif key not in keys:
        keys.append(key)


def forget_task(st: ClusterState, task_id: str, key: str) -> None:
    keys = st._task_keys.get(task_id)
    if keys is not None and key in keys:
        keys.remove(key)
        if not keys:
            del st._task_keys[task_id]


def rebuild_task_index(st: ClusterState) -> None:
    """Recompute the index from the task entities (after a snapshot load)."""
    st._task_keys = {}
    for key, task in raw_items(st.tasks):  # the storage: a fork's items() would copy every task
        index_task(st, task["task_id"], key)
