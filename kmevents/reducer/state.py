"""ClusterState: the folded state of one cluster, as plain dicts.

Entities live in one table per kind, ``id -> dict``. The dicts are the values
the processors write to etcd; the reducer mutates them in place (speed), so a
caller that keeps one across ``apply`` calls must copy it. Snapshots are exact
copies (canonical bytes, see snapshot.py). Pods, tasks, services, nodes and executors
(packed.PACKED_KINDS: a large cluster has ~10^5 of the first two) rest as their canonical
bytes between reads, compressed once a table is big enough (packed.py).

Besides the entities the state holds bookkeeping that the fold needs and
snapshots carry: the log position, the dedupe window, the terminal indexes of
retention.py, and derived indexes (pods by namespace, RC and service members)
that are rebuilt from the entities when a snapshot is loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

from kmevents.reducer.aggregates import materialize
from kmevents.reducer.dedupe import Digests, Recent
from kmevents.reducer.packed import (
    PackedTable,
    bytes_and_value,
    condition_counts,
    conditions,
    packed_bytes,
    same_at_rest,
    value_of,
)
from kmevents.reducer.retention import RECENT, RETAINED_KINDS, Retention, new_indexes
from kmevents.reducer.tracking import Track

#: Version of the fold logic. Checkpoints and snapshots record it; bump it
#: whenever the same log would fold to different entity values.
REDUCER_VERSION = 5
# 2: k8sm's decline after expiry/rescind is recorded, not annotated stale
# 3: retention ages terminal entities by a watermark one outlying occurred_at cannot move
# 4: a task's identity is (framework_id, task_id): its id is ``<framework_id>/<task_id>``
# 5: the dedupe window holds 64-bit digests of the keys (dedupe.py); version-4 snapshots load

KINDS = ("cluster", "framework", "agent", "offer", "inverse_offer", "task", "executor",
         "pod", "namespace", "node", "rc", "service", "role")


class Members(dict[str, None]):
    """A set of pod ids (an RC's running or other pods, a service's ready ones) held as a
    dict's keys, with the set operations the fold and its snapshots and deltas use (issue 17).

    A set of 42 ids takes 2,264 bytes, a dict of them 832 (an empty one 216 and 64): the RCs'
    and services' members at 300k events of the large profile take 1.60 MiB instead of 2.81.
    Equal to a set of the same ids (and a set to it); ``a - b`` either way is the set of ids.
    The ids iterate in the order they came in (a set's order was its hashes'): nothing reads
    them in order without sorting."""

    __slots__ = ()

    @classmethod
    def of(cls, ids: Iterable[str] = ()) -> Members:
        m = cls()
        dict.update(m, dict.fromkeys(ids))
        return m

    def add(self, id: str) -> None:
        self[id] = None

    def discard(self, id: str) -> None:
        self.pop(id, None)

    def update(self, ids: Iterable[str]) -> None:  # type: ignore[override]
        dict.update(self, dict.fromkeys(ids))

    def difference_update(self, ids: Iterable[str]) -> None:
        pop = self.pop
        for id in ids:
            pop(id, None)

    def copy(self) -> Members:
        m = Members()
        dict.update(m, self)
        return m

    def __sub__(self, other: Any) -> set[str]:
        return self.keys() - other

    def __rsub__(self, other: Any) -> set[str]:
        return set(other) - self.keys()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (set, frozenset)):
            return self.keys() == other
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return f"Members({sorted(self)!r})"


class Base:
    """What a cumulative delta is taken against: the base snapshot's offset (its index entry's)
    and the state's own offset there, the dedupe rotations and new-digest set there, and every
    entity changed since."""

    __slots__ = ("offset", "state_offset", "rotations", "new", "changed", "recent", "track", "aggs")

    def __init__(self, offset: int, state_offset: int, rotations: int, new: set[int] | Recent,
                 terminal: dict[str, dict[str, str]], stale: set[str] | None = None) -> None:
        self.offset = offset
        self.state_offset = state_offset
        self.rotations = rotations
        self.new = new
        self.changed: set[tuple[str, str]] = set()
        #: the agents whose totals (allocation, contributions: aggregates.py) may have changed
        #: since the base: every agent brought up to date since (``materialize``), and those
        #: stale at the base. A format-4 delta holds theirs, not all 12,500 of a large cluster.
        self.aggs: set[str] = set(stale or ())
        #: the entities changed since the last delta a ``delta.Remembered`` wrote (None: none
        #: does, nothing kept)
        self.recent: set[tuple[str, str]] | None = None
        #: what the membership indexes and retention orders (``terminal``: the state's at the
        #: base) were at the base where the fold changed them since, noted as it changes them:
        #: a delta holds their changes, read from these notes (tracking.py)
        self.track = Track(terminal)


#: A fold of at most this many records onto a fork that is then dropped or frozen may leave
#: the values it touches decoded (``ClusterState.packs`` off): a few thousand records touch a
#: few thousand entities, some MiB, and a value touched again after a pack is not encoded and
#: decoded once more. Measured (BENCHMARKS.md, "A read's records made once"): a 4,000-record
#: fold after a delta and its freeze 0.94 at the simulator's scale; at full size, where a fold
#: touches its entities again less often, the freeze's larger pack gives the saving back. A
#: longer fold packs, as every fold does, to bound its memory.
SHORT_FOLD: Final = 20_000


class ClusterState:
    """One cluster's folded state. Build with ``ClusterState.empty`` or ``from_snapshot``."""

    __slots__ = (
        "cluster", "retention", "kinds",
        "clusters", "frameworks", "agents", "offers", "inverse_offers", "tasks", "executors",
        "pods", "namespaces", "nodes", "rcs", "services", "roles", "_tables",
        "partition", "offset", "last_occurred_at", "max_occurred_at", "watermark", "_recent", "_seq",
        "_dedupe_window", "_limits",
        "_seen_new", "_seen_old", "_terminal", "_dirty", "_pending", "_ev",
        "_stale", "_alloc", "_contrib", "_agent_offers",
        "_pods_by_ns", "_rc_sel", "_svc_sel", "_rc_members", "_svc_members", "_task_keys",
        "_task_fws", "_task_fws_counted", "_rotations", "_base", "packs",
    )

    def __init__(self, cluster: str, retention: Retention | None = None) -> None:
        self.cluster = cluster
        self.retention = retention if retention is not None else Retention()
        self.kinds = KINDS
        self.clusters: dict[str, dict[str, Any]] = {}
        self.frameworks: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.offers: dict[str, dict[str, Any]] = {}
        self.inverse_offers: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = PackedTable()
        self.executors: dict[str, dict[str, Any]] = PackedTable()
        self.pods: dict[str, dict[str, Any]] = PackedTable()
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = PackedTable()
        self.rcs: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = PackedTable()
        self.roles: dict[str, dict[str, Any]] = {}
        self._tables = {
            "cluster": self.clusters, "framework": self.frameworks, "agent": self.agents,
            "offer": self.offers, "inverse_offer": self.inverse_offers, "task": self.tasks,
            "executor": self.executors, "pod": self.pods, "namespace": self.namespaces,
            "node": self.nodes, "rc": self.rcs, "service": self.services, "role": self.roles,
        }
        #: partition of the last applied event (None until one says)
        self.partition: int | None = None
        #: offset of the last applied event (-1: nothing applied)
        self.offset = -1
        self.last_occurred_at: str | None = None
        #: newest occurred_at seen ("" before any event)
        self.max_occurred_at = ""
        #: the source time retention ages by (retention.py): the median occurred_at of the
        #: last RECENT events, never moving back ("" before the first age check)
        self.watermark = ""
        self._recent: list[str] = [""] * RECENT
        #: events with a well-formed envelope folded so far (the ring's and age checks' clock)
        self._seq = 0
        self._dedupe_window = self.retention.dedupe_window
        self._limits = {k: self.retention.limit(k) for k in RETAINED_KINDS}
        #: the dedupe window (apply.py step 4): digests of the keys applied (dedupe.py)
        #: (a dedupe.Recent from Recent.SPILL digests on: compact as it grows)
        self._seen_new: set[int] | Recent = set()
        #: (after a rotation a dedupe.Digests: read only, compact; a set as a snapshot loads it)
        self._seen_old: set[int] | Digests = set()
        self._terminal = new_indexes(self._limits)
        self._dirty: set[tuple[str, str]] = set()
        self._pending: list[dict[str, Any]] = []
        self._ev: Any = None
        # resource totals (aggregates.py): agents whose totals must be recomputed,
        # running allocation per agent and role, what each agent last pushed into
        # the roles (allocated, offered), outstanding offers per agent
        self._stale: set[str] = set()
        self._alloc: dict[str, dict[str, dict[str, float]]] = {}
        self._contrib: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._agent_offers: dict[str, dict[str, None]] = {}
        # derived indexes (rebuilt on snapshot load)
        self._pods_by_ns: dict[str, set[str]] = {}
        #: namespace -> selector anchor pair (None: loose) -> RC ids; see handlers_k8s._sel_add
        self._rc_sel: dict[str, dict[Any, set[str]]] = {}
        #: the same for services
        self._svc_sel: dict[str, dict[Any, set[str]]] = {}
        #: rc id -> (running pod ids, matching pod ids not running)
        self._rc_members: dict[str, tuple[Members, Members]] = {}
        #: service id -> ready matching pod ids
        self._svc_members: dict[str, Members] = {}
        #: the task-id index (taskids.py): the framework ids of the task keys ``<framework_id>/
        #: <task_id>`` seen (a task is found by trying each), and the task ids of the odd keys
        #: whose task id is not what follows their first ``/`` -> that key, or a list of them
        #: (may name pruned ones: check ``tasks``)
        self._task_fws: dict[str, None] = {}
        self._task_fws_counted = 0  # how many framework ids the last recount found (taskids.py)
        self._task_keys: dict[str, str | list[str]] = {}
        #: how many times the dedupe window rotated (new -> old) in this object's life
        self._rotations = 0
        #: what a delta is taken against (``mark_base``): None when no delta is tracked
        self._base: Base | None = None
        #: the fold packs the values it touched back to bytes every ``AGE_CHECK_EVERY`` events
        #: (apply.py, packed.py). A fork folded for at most :data:`SHORT_FOLD` records and then
        #: dropped or frozen (a history's unit, a point-in-time read's segment) may turn it off:
        #: every value read, condition and dirty mark is the same either way, the values just
        #: stay decoded until ``freeze`` packs them (memory); the tables then train their
        #: dictionaries later, which shows only in the bytes of a snapshot of that state.
        self.packs = True

    @classmethod
    def empty(cls, cluster: str, retention: Retention | None = None) -> ClusterState:
        """A state with nothing applied (offset -1)."""
        return cls(cluster, retention)

    # -- reading ----------------------------------------------------------

    def entity(self, kind: str, id: str) -> dict[str, Any] | None:
        """Current value of ``kind/id``, or None when it is not (or no longer) in live state.

        The dict is live: do not mutate it; copy it to keep it past the next ``apply``.
        """
        if self._stale:
            materialize(self)
        return self._tables[kind].get(id)

    def entity_read(self, kind: str, id: str) -> dict[str, Any] | None:
        """``entity`` for a reader outside the fold: a packed entity at rest is decoded without
        being kept hot, so the fold's next pack does not encode and compress it again (the
        worker reads every changed entity after its batch, for the touched-entity index)."""
        if self._stale:
            materialize(self)
        return value_of(self._tables[kind], id)

    def peek(self, kind: str, id: str) -> dict[str, Any] | None:
        """``entity`` without bringing agent and role totals up to date: the value itself for
        every other kind (live: do not mutate it)."""
        return self._tables[kind].get(id)

    def entities(self, kind: str) -> Iterable[tuple[str, dict[str, Any]]]:
        """``(id, value)`` pairs of one kind, in no particular order (live dicts)."""
        if self._stale:
            materialize(self)
        return self._tables[kind].items()

    def conditions(self, kind: str) -> Iterable[tuple[str, str]]:
        """``(id, condition of its value)`` pairs of one kind (conditions.py), in no particular
        order: a packed kind's conditions are mostly known without decoding its values."""
        if self._stale:
            materialize(self)
        return conditions(self._tables[kind])

    def condition_counts(self, kind: str) -> Counter[str]:
        """How many entities of one kind stand in each condition (``conditions`` counted)."""
        if self._stale:
            materialize(self)
        return condition_counts(self._tables[kind])

    def ids(self, kind: str) -> Iterable[str]:
        """The ids of one kind's entities, in no particular order (no value is decoded)."""
        return self._tables[kind].keys()

    def entity_bytes(self, kind: str, id: str) -> bytes | None:
        """The canonical bytes of ``kind/id`` (``orjson.dumps(value, OPT_SORT_KEYS)``, what etcd
        holds), or None when it is not in live state. A packed entity's bytes are not re-encoded."""
        if self._stale:
            materialize(self)
        return packed_bytes(self._tables[kind], id)

    def entity_bytes_read(self, kind: str, id: str, *, value: bool = True) -> tuple[bytes | None, Any]:
        """``(entity_bytes(kind, id), entity_read(kind, id))`` from one read of the value (a packed
        entity at rest is decompressed once); with ``value=False`` the value of an entity at rest
        is not decoded (None). ``(None, None)``: not in live state."""
        if self._stale:
            materialize(self)
        return bytes_and_value(self._tables[kind], id, value=value)

    def task_ids(self, task_id: str) -> list[str]:
        """The ids of the task entities whose Mesos task id is ``task_id`` (one per framework
        that used it; a task entity's id is ``<framework_id>/<task_id>``), sorted. See taskids.py:
        a regular task is found through its framework id, an odd one through ``_task_keys``."""
        tasks = self.tasks
        out = [k for k in [fw + "/" + task_id for fw in self._task_fws] if k in tasks]
        odd = self._task_keys
        if odd:
            # a regular-looking key may be an odd task's with another task id ("a/b/c" of
            # framework "a/b" is not task "b/c" of framework "a")
            if out:
                odd_keys = {k for v in odd.values() for k in ((v,) if type(v) is str else v)}
                out = [k for k in out if k not in odd_keys]
            keys = odd.get(task_id)
            if keys is not None:
                out.extend(k for k in ((keys,) if type(keys) is str else keys) if k in tasks)
        if len(out) > 1:
            out.sort()
        return out

    def count(self, kind: str) -> int:
        return len(self._tables[kind])

    def same_entity(self, other: ClusterState, kind: str, id: str) -> bool:
        """Whether ``kind/id`` has the same value here and in ``other`` (both holding it), from
        their canonical bytes: stored bytes equal under one dictionary need no decompressing
        (``packed.same_at_rest``)."""
        if self._stale:
            materialize(self)
        if other._stale:
            materialize(other)
        mine, theirs = self._tables[kind], other._tables[kind]
        if same_at_rest(mine, theirs, id):
            return True
        return packed_bytes(mine, id) == packed_bytes(theirs, id)

    @property
    def dirty_count(self) -> int:
        """How many entities changed since the last ``take_dirty`` (not counting
        agent/role aggregates, which are only materialized when read)."""
        return len(self._dirty)

    def take_dirty(self, *, totals: bool = True) -> set[tuple[str, str]]:
        """``(kind, id)`` of every entity changed, created or removed since the last call.

        Removed ones (deleted, or pruned by retention) are in the set too; for
        them ``entity(kind, id)`` is None, which tells the processor to delete the key.
        ``totals=False``: leave the agents' and roles' totals stale (aggregates.py: when they
        are brought up to date does not change them); the agents and roles that catch-up
        marks then come in a later set. A reader of other kinds (history) saves the work.
        """
        if totals and self._stale:
            materialize(self)
        d = self._dirty
        self._dirty = set()
        base = self._base
        if base is not None:
            base.changed |= d
            if base.recent is not None:
                base.recent |= d
        return d

    # -- deltas -----------------------------------------------------------

    def mark_base(self, offset: int | None = None) -> None:
        """Track changes from here on, for :meth:`to_delta` (this state is the base: its
        snapshot was just written or loaded, at ``offset``, default its own).

        The dirty set is left for its owner (the worker has not always collected it
        yet); what is in it now joins the delta's changes later, which costs only bytes."""
        new = self._seen_new
        # (a Recent's copy shares its runs: a delta reads only the digests added since, dedupe.added_since)
        self._base = Base(self.offset if offset is None else offset, self.offset, self._rotations,
                          new.copy() if type(new) is Recent else set(new), self._terminal, self._stale)

    def drop_base(self) -> None:
        """Stop tracking changes (the base snapshot was not written)."""
        self._base = None

    @property
    def base_offset(self) -> int | None:
        """The offset of the snapshot a delta would be taken against (None: none tracked)."""
        return None if self._base is None else self._base.offset

    def to_delta(self, chain_hash: str | None = None) -> bytes:
        """Canonical bytes of what changed since :meth:`mark_base`: with the base's snapshot,
        :func:`~kmevents.reducer.snapshot.apply_delta` gives exactly this state (delta.py)."""
        from kmevents.reducer.delta import dump_delta

        return dump_delta(self, chain_hash)

    @property
    def position(self) -> tuple[int | None, int]:
        """``(partition, offset)`` of the last applied event."""
        return (self.partition, self.offset)

    @property
    def last_event_times(self) -> dict[str, str | None]:
        """``occurred_at`` of the last applied event, and the newest one seen."""
        return {"last_occurred_at": self.last_occurred_at,
                "max_occurred_at": self.max_occurred_at or None, "watermark": self.watermark or None}

    def terminal_ids(self, kind: str) -> Iterator[str]:
        """Ids of retained terminal entities of ``kind``, oldest first."""
        return iter(self._terminal.get(kind, ()))

    # -- forks ------------------------------------------------------------

    def fork(self, *, plain: bool = False) -> ClusterState:
        """A state equal to this one that can be folded on without changing this one (which
        must not change meanwhile): copy-on-write, milliseconds however big (fork.py).
        ``plain``: a short-lived fork (a read's), whose changed entities rest uncompressed
        (packed.share)."""
        from kmevents.reducer.fork import fork

        return fork(self, plain=plain)

    def freeze(self) -> ClusterState:
        """End a fork's fold: aggregates materialized, tables plain dicts again; read-only from
        here on, and it may be forked again. Returns this state."""
        from kmevents.reducer.fork import freeze

        return freeze(self)

    # -- snapshots --------------------------------------------------------

    def to_snapshot(self, chain_hash: str | None = None) -> bytes:
        """Snapshot bytes of the whole state (format 5, packed kinds as they rest: see
        snapshot.py); ``snapshot.dump(st, format=FORMAT_3)`` gives its canonical bytes."""
        from kmevents.reducer.snapshot import dump

        return dump(self, chain_hash)

    @classmethod
    def from_snapshot(cls, data: bytes | IO[bytes]) -> ClusterState:
        """Load a state written by ``to_snapshot`` (its bytes, or a binary stream of them read
        line by line); it folds on exactly like the original."""
        from kmevents.reducer.snapshot import load

        return load(data)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(t)}" for k, t in self._tables.items() if t)
        return f"<ClusterState {self.cluster} @{self.partition}:{self.offset} {sizes}>"
