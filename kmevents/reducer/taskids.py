"""The task-id index: a Mesos task id (unique only within its framework) -> the task entities
that carry it (``<framework_id>/<task_id>``). Derived from the entities: kept as tasks come and
go (including when retention prunes one), rebuilt when a snapshot is loaded.

Nearly every task's key is its framework id, ``/``, its task id: such a *regular* task is found
from its task id by trying each framework id the index has seen (``ClusterState._task_fws``,
one or two at a real cluster: k8sm's framework and ``-`` for tasks seen before their
framework) against the task table. So the index holds no string per task: at the large
profile's 160k tasks a ``task id -> key`` dict was 21 MiB of the fold's state (issue 17,
BENCHMARKS.md). Only the *odd* tasks, whose task id is not what follows the first ``/`` of
their key (a framework id holding a ``/``: hostile input), are indexed by task id in
``ClusterState._task_keys``: the key itself when one task carries the id, a list when several
do. A lookup checks the table, so the framework ids tried may include some whose tasks are all
gone: the keys found are the same. They are counted again from the table when they grow past
``FRAMEWORKS_RECOUNTED_PAST`` and twice what the last count found, so a lookup tries about the
frameworks holding tasks now, not every framework a long fold has seen: a Mesos cluster where
each Spark job registers a framework sees thousands, and at 10,000 framework ids a lookup took
1.27 ms (BENCHMARKS.md, "Task lookups and many frameworks")."""

from __future__ import annotations

from itertools import compress, repeat
from operator import itemgetter, ne

from kmevents.reducer.packed import raw_items
from kmevents.reducer.state import ClusterState

#: The framework ids tried by a lookup are counted again from the task table (~25 ms at 160k
#: tasks) when there are more than this many, and more than twice as many as the last count found.
FRAMEWORKS_RECOUNTED_PAST = 64


def index_task(st: ClusterState, task_id: str, key: str) -> None:
    fw, _, rest = key.partition("/")
    if rest == task_id:  # regular: found through its framework id
        fws = st._task_fws
        if fw not in fws:
            fws[fw] = None
            if len(fws) > FRAMEWORKS_RECOUNTED_PAST and len(fws) > 2 * st._task_fws_counted:
                recount_frameworks(st)
                st._task_fws.setdefault(fw)  # (this task's, though the table may not hold it yet)
        return
    keys = st._task_keys.get(task_id)
    if keys is None:
        st._task_keys[task_id] = key  # one key as itself, not a one-element list
    elif isinstance(keys, str):
        if keys != key:
            st._task_keys[task_id] = [keys, key]
    elif key not in keys:
        keys.append(key)


def recount_frameworks(st: ClusterState) -> None:
    """The framework ids to try: those of the keys in the task table now (every key's part before
    its first ``/``, at C speed; an odd key's too, harmless)."""
    st._task_fws = dict.fromkeys(map(itemgetter(0), map(str.partition, dict.keys(st.tasks), repeat("/"))))
    st._task_fws_counted = len(st._task_fws)


def forget_task(st: ClusterState, task_id: str, key: str) -> None:
    """``key`` no longer carries ``task_id`` (pruned, re-keyed): a regular task is found only
    while the table holds it, so only an odd one has anything to forget."""
    if key.partition("/")[2] == task_id:
        return
    keys = st._task_keys.get(task_id)
    if keys is None:
        return
    if isinstance(keys, str):
        if keys == key:
            del st._task_keys[task_id]
    elif key in keys:
        keys.remove(key)
        if len(keys) == 1:
            st._task_keys[task_id] = keys[0]


def has_odd_tasks(st: ClusterState) -> bool:
    """Whether any task is odd (its key's tail is not its task id): without one, :func:`forget_task`
    does nothing, so a task leaving the table need not be decoded for its id (retention's
    pruning, a delta's removals)."""
    return bool(st._task_keys)


def keys_of(st: ClusterState, task_id: str) -> list[str]:
    """The keys the index gives for ``task_id`` (``ClusterState.task_ids``: only tasks the table
    holds)."""
    return st.task_ids(task_id)


def rebuild_task_index(st: ClusterState, exceptions: dict[str, str] | None = None) -> None:
    """Recompute the index from the task entities (after a snapshot load).

    ``exceptions`` (a snapshot's, :func:`key_exceptions`): the task ids that are not what
    follows the first ``/`` of their entity's key; with it no task is decoded (a key is
    ``<framework_id>/<task_id>`` and a framework id holds no ``/`` but in hostile input).
    Without it each task's ``task_id`` is read."""
    st._task_keys = {}
    st._task_fws = {}
    st._task_fws_counted = 0
    if exceptions is None:
        for key, task in raw_items(st.tasks):  # the storage: a fork's items() would copy every task
            index_task(st, task["task_id"], key)
        st._task_fws_counted = len(st._task_fws)
        return
    recount_frameworks(st)
    for key, tid in exceptions.items():
        if key in st.tasks:
            index_task(st, tid, key)


def key_exceptions(st: ClusterState) -> dict[str, str]:
    """``{key: task_id}`` of the tasks whose id is not what follows the first ``/`` of their
    key (none unless a framework id holds a ``/``), from the index (no task decoded). Every
    snapshot and delta writes it. (The fold's index holds only such tasks by task id; an index
    holding regular ones too, as older code kept, gives the same.)"""
    tasks = st.tasks
    index = st._task_keys
    tids, keys = list(index), list(index.values())
    out: dict[str, str] = {}
    if all(map(isinstance, keys, repeat(str))):
        one: list[str] = keys  # type: ignore[assignment]  # (every value a key itself)
        suffixes = map(itemgetter(2), map(str.partition, one, repeat("/")))
        for key, tid in compress(zip(one, tids, strict=True), map(ne, suffixes, tids)):
            if key in tasks:
                out[key] = tid
        return out
    for tid, many in zip(tids, keys, strict=True):
        for key in (many,) if type(many) is str else many:
            if key.partition("/")[2] != tid and key in tasks:
                out[key] = tid
    return out
