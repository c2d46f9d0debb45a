"""What changed since a delta's base in the membership indexes and retention orders, recorded
as the fold changes them (issue 17).

A cumulative delta (delta.py) holds the pod membership indexes' changes and the retention
orders' changes since its base. They were found by comparing the indexes and orders whole with
copies the state took at the base (``mark_base``): at the large profile's 145k live pods and
60k retained ids ~55 ms of every delta and ~50 ms of every base, however little had changed.
Now each place of the fold that changes one (membership.py, handlers_k8s.py's deletions,
retention.py, handlers_mesos.py's rekey) first notes here what it is about to change was at the
base, the first time it changes it since; a delta reads only those notes (:func:`index_changes`,
:func:`order_changes`), and a base copies nothing. The delta's bytes are the same: the whole
comparisons (``delta._order_changes``, and ``_index_changes`` in the test) stay as the oracle of
a property test (tests/unit/reducer/test_delta_tracking.py), which fails when a place forgets to note.

**Membership indexes** (``pods_by_ns``: namespace -> pod ids; ``svc_members``: service ->
ready pod ids; ``rc_members``: RC -> (running, other) pod ids). Two notes:

- ``was[key][pod]``: whether the pod was in the key's set at the base (an RC's: in its running
  and in its other set), noted before the first change of that pair since. A pod not noted
  under a key is where it was.
- ``whole[key]``: the key's set (an RC's pair) at the base, as a copy, or None when the key
  did not exist; noted before the key is first created, removed or replaced since (an RC's or
  service's rescan). Such a key is compared whole. A key that is not there now and not noted
  here was not there at the base either (its removal would have noted it); one that is there
  and not noted was there, and its base set is the current one with the noted pods put back
  as they were (:func:`base_set`).

Worked example: at the base namespace ``web`` holds {p1, p2}. p3 joins (``was["web"]`` =
{p3: False}), p1 leaves ({p3: False, p1: True}), p3 leaves again (unchanged: noted already).
The delta reads web's notes only: added = noted False and in it now = [], removed = noted True
and not in it now = [p1]: ``{"web": [[], ["p1"]]}``, what comparing {p2} with {p1, p2} gives.

**Retention orders** (``{id: time}``, oldest first, per kind): the fold appends a new id at the
end (``mark``), and removes ids, mostly the oldest (the count limit, age pruning), rarely one
from the middle (``unmark``, a task's rekey). So the order now is the base's entries still in
place, in the base's order, then the entries added since; :class:`OrderLog` notes the base's
entries removed (``gone``) and how many the base held, and a delta's ``drop`` is ``gone``
sorted and its ``tail`` the last ``len(now) - (base_len - len(gone))`` entries now. When a base
entry comes back (removed, then added again at the end) or one is changed in place, that is
not the shape the delta's ``drop``/``tail`` can say, or says only by chance: the order is then
compared whole with the base's, as before. The base's order is rebuilt for that from the
entries popped from the front (in order) and the first entries still there, or, once an entry
in its base place was removed from the middle or changed, from the copy taken just before that
(at most once a base, and only then).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

#: the membership indexes a delta holds the changes of, as ClusterState names them without "_"
INDEXES = ("pods_by_ns", "svc_members", "rc_members")


class Track:
    """The notes of one base (``Base.track``): per membership index its ``was`` and ``whole``
    (module docstring), per retained kind its :class:`OrderLog`."""

    __slots__ = ("was", "whole", "orders")

    def __init__(self, terminal: dict[str, dict[str, str]]) -> None:
        #: index name -> key -> pod id -> in the set at the base (rc_members: (running, other))
        self.was: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in INDEXES}
        #: index name -> key -> its set (rc_members: pair of sets) at the base, None: not there
        self.whole: dict[str, dict[str, Any]] = {name: {} for name in INDEXES}
        # (the storage: a fork's lazily copied table would copy every order to read its length)
        self.orders = {kind: OrderLog(len(idx)) for kind, idx in dict.items(terminal)}


def noted(was: dict[str, dict[str, bool]], key: str, pid: str, s: Any) -> None:
    """Before pod ``pid`` joins or leaves ``s``, the set of ``key`` (``was``: its index's notes)."""
    d = was.get(key)
    if d is None:
        was[key] = {pid: pid in s}
    elif pid not in d:
        d[pid] = pid in s


def noted_rc(was: dict[str, dict[str, tuple[bool, bool]]], rid: str, pid: str, run: Any, other: Any) -> None:
    """Before pod ``pid`` joins or leaves RC ``rid``'s running or other set."""
    d = was.get(rid)
    if d is None:
        was[rid] = {pid: (pid in run, pid in other)}
    elif pid not in d:
        d[pid] = (pid in run, pid in other)


def key_changing(track: Track, name: str, table: dict[str, Any], key: str) -> None:
    """Before ``key`` of the index ``name`` (``table``) is created, removed or replaced."""
    whole = track.whole[name]
    if key in whole:
        return
    cur = dict.get(table, key)
    if cur is None:
        whole[key] = None
        return
    was = track.was[name].get(key, {})
    if name == "rc_members":
        whole[key] = (base_set(cur[0], {p: w[0] for p, w in was.items()}),
                      base_set(cur[1], {p: w[1] for p, w in was.items()}))
    else:
        whole[key] = base_set(cur, was)


def base_set(cur: Any, was: dict[str, bool]) -> set[str]:
    """A set at the base: ``cur`` with the pods noted in ``was`` put back as they were."""
    out = {p for p in cur if p not in was}
    out.update(p for p, w in was.items() if w)
    return out


def index_changes(track: Track, name: str, now: dict[str, Any]) -> dict[str, Any]:
    """What comparing the index ``name`` (``now``: its table) whole with its base gives, from the
    notes: ``{key: [added, removed] | None}`` (rc_members: ``[[added, removed], [added, removed]]``)."""
    from kmevents.reducer.delta import _set_change

    pair = name == "rc_members"
    out: dict[str, Any] = {}
    whole = track.whole[name]
    for key, was in whole.items():
        cur = dict.get(now, key)
        if was is None:
            if cur is not None:
                out[key] = [_set_change(c, set()) for c in cur] if pair else _set_change(cur, set())
        elif cur is None:
            out[key] = None
        elif cur != was:
            out[key] = [_set_change(c, w) for c, w in zip(cur, was, strict=True)] if pair else _set_change(cur, was)
    for key, notes in track.was[name].items():
        if key in whole:
            continue
        cur = dict.__getitem__(now, key)  # there at the base, not created or removed since
        if pair:
            run, other = cur
            ch = [[sorted(p for p, w in notes.items() if not w[0] and p in run),
                   sorted(p for p, w in notes.items() if w[0] and p not in run)],
                  [sorted(p for p, w in notes.items() if not w[1] and p in other),
                   sorted(p for p, w in notes.items() if w[1] and p not in other)]]
            if ch[0][0] or ch[0][1] or ch[1][0] or ch[1][1]:
                out[key] = ch
        else:
            added = sorted(p for p, w in notes.items() if not w and p in cur)
            removed = sorted(p for p, w in notes.items() if w and p not in cur)
            if added or removed:
                out[key] = [added, removed]
    return out


class OrderLog:
    """One retention order's changes since the base (module docstring)."""

    __slots__ = ("base_len", "gone", "popped", "added", "copy", "moved")

    def __init__(self, base_len: int) -> None:
        #: how many entries the order held at the base
        self.base_len = base_len
        #: the base's entries removed since (each once: one that comes back is in ``added``)
        self.gone: set[str] = set()
        #: those removed from the front, with their times, in order (while ``copy`` is None)
        self.popped: list[tuple[str, str]] = []
        #: the ids added since the base (there now or not)
        self.added: set[str] = set()
        #: the base's order, taken before an entry in its base place left from the middle or
        #: was changed in place (None: not taken, ``popped`` and the first entries say it)
        self.copy: dict[str, str] | None = None
        #: a base entry came back or was changed in place: compared whole with the base's order
        self.moved = False

    def adding(self, eid: str) -> None:
        """Before ``eid``, not in the order, is added at its end."""
        if eid in self.gone:
            self.moved = True
        self.added.add(eid)

    def removing(self, idx: dict[str, str], eid: str, *, front: bool = False) -> None:
        """Before ``eid``, in the order ``idx``, is removed from it (``front``: it is the oldest)."""
        if eid in self.added:
            return  # added since the base: the tail says what is there now
        if self.copy is None:
            if front or next(iter(idx)) == eid:
                self.popped.append((eid, dict.__getitem__(idx, eid)))
            else:
                self.copy = self.base_order(idx)
        self.gone.add(eid)

    def changing(self, idx: dict[str, str], eid: str) -> None:
        """Before the time of ``eid``, in the order ``idx``, is changed in place."""
        if eid in self.added:
            return
        if self.copy is None:
            self.copy = self.base_order(idx)
        self.moved = True

    def base_order(self, now: dict[str, str]) -> dict[str, str]:
        """The order at the base, ``now`` being the order as these notes leave it."""
        if self.copy is not None:
            return self.copy
        out = dict(self.popped)
        out.update(islice(dict.items(now), self.base_len - len(self.gone)))
        return out


def order_changes(log: OrderLog, now: dict[str, str]) -> dict[str, Any]:
    """What ``delta._order_changes`` gives for the order ``now`` against the base's, from ``log``."""
    if log.moved:
        from kmevents.reducer.delta import _order_changes

        return _order_changes(log.base_order(now), now)
    k = len(now) - (log.base_len - len(log.gone))
    tail = list(islice(reversed(dict.items(now)), k))
    tail.reverse()
    return {"drop": sorted(log.gone), "tail": [[i, t] for i, t in tail]}
