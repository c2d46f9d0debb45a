"""The derived memberships of the fold: which live pods each RC and service selects.

An RC's ``observed_replicas`` is the number of live
pods in its namespace whose labels match its selector and whose phase is
Running (``matching_not_running`` counts the other matching live pods); a
service's ``endpoints_derived`` is the sorted ids of live pods in its
namespace that match its selector and are ready. Both are kept incrementally:
before a pod changes it is taken out of every member set in its namespace,
afterwards it is put back where it now belongs, and only the RCs and services
whose figures moved are marked dirty. Worked example: rc ``web/fe`` selects
``app=fe``; pod ``web/p1`` (app=fe, Pending) counts in matching_not_running;
an upsert with phase Running moves it to observed_replicas (1, 0); a label
change to app=be removes it (0, 0); pod.deleted removes it for good. An empty
selector matches nothing (a service without a selector has its endpoints
managed by hand). The sets live outside the entities and are rebuilt from them
when a snapshot is loaded (``rebuild_indexes``).

Finding the RCs and services a pod could belong to. Each selector is filed in
its namespace under one of its pairs, the *anchor* (its least key's ``key: value``;
``sel_add``); a pod looks up its own label pairs there (``candidates``) and
only those few selectors are matched in full. A selector can only match a pod
that carries its anchor pair, so this finds every match; a selector whose
anchor value cannot be hashed (not a string: a malformed event) is filed
under None, *loose*, and tried for every pod of its namespace.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from kmevents.reducer.packed import raw_items
from kmevents.reducer.state import ClusterState, Members
from kmevents.reducer.tracking import key_changing, noted, noted_rc

Ent = dict[str, Any]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    if not selector:
        return False
    for k, v in selector.items():  # noqa: SIM110 (a plain loop is faster than all() here)
        if labels.get(k) != v:
            return False
    return True


def sel_anchor(selector: dict[str, Any]) -> tuple[Any, ...] | None:
    """The pair a selector is filed under, its least key's (not its first: a selector read
    back from canonical bytes has its keys sorted, one from an event has them in the event's
    order, and both must file alike: a snapshot holds the index, snapshot.py); None (loose)
    when it cannot be a dict key."""
    pair = min(selector.items()) if len(selector) > 1 else next(iter(selector.items()))
    try:
        hash(pair)
    except TypeError:
        return None
    return pair


def sel_add(index: dict[str, Any], ns: str, key: str, selector: dict[str, Any]) -> None:
    """File RC or service ``key`` of namespace ``ns`` under its selector's anchor."""
    if selector:  # an empty selector matches nothing
        index.setdefault(ns, {}).setdefault(sel_anchor(selector), set()).add(key)


def sel_remove(index: dict[str, Any], ns: str, key: str, selector: dict[str, Any]) -> None:
    """Undo ``sel_add`` (same selector object, or an equal one in the same key order)."""
    by_anchor = index.get(ns)
    if by_anchor is None or not selector:
        return
    anchor = sel_anchor(selector)
    ids = by_anchor.get(anchor)
    if ids is not None:
        ids.discard(key)
        if not ids:
            del by_anchor[anchor]
            if not by_anchor:
                del index[ns]


def candidates(index: dict[str, Any], ns: str, labels: dict[str, Any]) -> list[str]:
    """RCs or services of ``ns`` whose selector could match ``labels`` (each once)."""
    # read through the storage: in a fork (a lazily copied index, fork.py) ``index.get`` would
    # copy the namespace's whole map of anchors and sets to read it (~2 % of a warm API read at
    # the large profile); the value seen is the fork's own or, unchanged, its parent's
    by_anchor = dict.get(index, ns)
    if by_anchor is None:
        return []
    loose = by_anchor.get(None)
    out = list(loose) if loose else []
    for pair in labels.items():
        try:
            ids = by_anchor.get(pair)
        except TypeError:  # an unhashable label value equals no anchor
            continue
        if ids:
            out.extend(ids)
    return out


def unindex_pod(st: ClusterState, pod: Ent, rcs: set[str], svcs_left: set[str]) -> None:
    """Take a pod out of every member set (it is in those its current labels select)."""
    ns = pod["namespace"]
    pid = pod["id"]
    base = st._base  # each change noted first, while a delta's base is tracked (tracking.py)
    live = st._pods_by_ns.get(ns)
    if live is not None:
        if base is not None:
            noted(base.track.was["pods_by_ns"], ns, pid, live)
        live.discard(pid)
        if not live:
            if base is not None:
                key_changing(base.track, "pods_by_ns", st._pods_by_ns, ns)
            del st._pods_by_ns[ns]
    labels = pod["labels"]
    for rid in candidates(st._rc_sel, ns, labels):
        run, other = st._rc_members[rid]
        if pid in run:
            if base is not None:
                noted_rc(base.track.was["rc_members"], rid, pid, run, other)
            run.discard(pid)
            rcs.add(rid)
        elif pid in other:
            if base is not None:
                noted_rc(base.track.was["rc_members"], rid, pid, run, other)
            other.discard(pid)
            rcs.add(rid)
    for sid in candidates(st._svc_sel, ns, labels):
        m = st._svc_members[sid]
        if pid in m:
            if base is not None:
                noted(base.track.was["svc_members"], sid, pid, m)
            m.discard(pid)
            svcs_left.add(sid)


def index_pod(st: ClusterState, pod: Ent, rcs: set[str], svcs_joined: set[str], *,
              tables: tuple[dict[str, Ent], dict[str, Ent]] | None = None) -> None:
    """File a live pod under its namespace and in the member sets of the RCs and services
    whose selectors match it; ``rcs`` and ``svcs_joined`` collect those it joined.
    ``tables``: the RC and service tables to read selectors from (default the state's;
    ``rebuild_indexes`` passes their storage, since reading a fork's table copies the entity)."""
    if pod["deleted"] is not None:
        return
    rc_table, svc_table = (st.rcs, st.services) if tables is None else tables
    ns = pod["namespace"]
    pid = pod["id"]
    base = st._base  # each change noted first, while a delta's base is tracked (tracking.py)
    live = st._pods_by_ns.get(ns)
    if live is None:
        if base is not None:
            key_changing(base.track, "pods_by_ns", st._pods_by_ns, ns)
        st._pods_by_ns[ns] = {pid}
    else:
        if base is not None:
            noted(base.track.was["pods_by_ns"], ns, pid, live)
        live.add(pid)
    labels = pod["labels"]
    for rid in candidates(st._rc_sel, ns, labels):
        if matches(rc_table[rid]["selector"], labels):
            run, other = st._rc_members[rid]
            if base is not None:
                noted_rc(base.track.was["rc_members"], rid, pid, run, other)
            (run if pod["phase"] == "Running" else other).add(pid)
            rcs.add(rid)
    if pod["ready"] is True:
        for sid in candidates(st._svc_sel, ns, labels):
            if matches(svc_table[sid]["selector"], labels):
                m = st._svc_members[sid]
                if base is not None:
                    noted(base.track.was["svc_members"], sid, pid, m)
                m.add(pid)
                svcs_joined.add(sid)


def move_pod(st: ClusterState, pod: Ent, was_running: bool, was_ready: bool, rcs: set[str],
              svcs_left: set[str], svcs_joined: set[str]) -> None:
    """A live pod whose labels did not change: move it between its RCs' running and
    other sets and in or out of its services' members, as its phase and readiness say.

    The same as ``unindex_pod`` then ``index_pod`` (the selectors that match
    it are the same before and after), without looking twice.
    """
    ns = pod["namespace"]
    pid = pod["id"]
    labels = pod["labels"]
    running = pod["phase"] == "Running"
    base = st._base  # each change noted first, while a delta's base is tracked (tracking.py)
    if running != was_running:
        for rid in candidates(st._rc_sel, ns, labels):
            if matches(st.rcs[rid]["selector"], labels):
                run, other = st._rc_members[rid]
                if base is not None:
                    noted_rc(base.track.was["rc_members"], rid, pid, run, other)
                if running:
                    other.discard(pid)
                    run.add(pid)
                else:
                    run.discard(pid)
                    other.add(pid)
                rcs.add(rid)
    ready = pod["ready"] is True
    if ready != (was_ready is True):
        for sid in candidates(st._svc_sel, ns, labels):
            if matches(st.services[sid]["selector"], labels):
                m = st._svc_members[sid]
                if base is not None:
                    noted(base.track.was["svc_members"], sid, pid, m)
                if ready:
                    m.add(pid)
                    svcs_joined.add(sid)
                else:
                    m.discard(pid)
                    svcs_left.add(sid)


def refresh_rcs(st: ClusterState, rcs: set[str]) -> None:
    """Copy the member counts of ``rcs`` into the entities; dirty those that moved."""
    for rid in rcs:
        rc = st.rcs[rid]
        run, other = st._rc_members[rid]
        if rc["observed_replicas"] != len(run) or rc["matching_not_running"] != len(other):
            rc["observed_replicas"] = len(run)
            rc["matching_not_running"] = len(other)
            st._dirty.add(("rc", rid))


def refresh_endpoints(st: ClusterState, pid: str, left: set[str], joined: set[str]) -> None:
    """Move ``pid`` in the sorted ``endpoints_derived`` of the services it left or joined.

    ``endpoints_derived`` always equals ``sorted(members)`` (``refresh_service``
    sets it so, and every pod change goes through here), so editing one id in
    place of re-sorting gives the same list. A new list replaces the old one:
    a caller may hold a shallow copy of the entity.
    """
    for sid in left ^ joined:  # left and joined again: unchanged
        svc = st.services[sid]
        derived = list(svc["endpoints_derived"])
        if sid in joined:
            insort(derived, pid)
        else:
            del derived[bisect_left(derived, pid)]
        svc["endpoints_derived"] = derived
        st._dirty.add(("service", sid))


def refresh_service(st: ClusterState, sid: str) -> None:
    """Recompute a service's ``endpoints_derived`` from its member set (after a rescan)."""
    svc = st.services[sid]
    derived = sorted(st._svc_members[sid])
    if svc["endpoints_derived"] != derived:
        svc["endpoints_derived"] = derived
        st._dirty.add(("service", sid))


def rc_rescan(st: ClusterState, rid: str) -> None:
    rc = st.rcs[rid]
    run = Members()
    other = Members()
    sel = rc["selector"]
    for pid in st._pods_by_ns.get(rc["namespace"], ()):
        pod = st.pods[pid]
        if matches(sel, pod["labels"]):
            (run if pod["phase"] == "Running" else other).add(pid)
    if st._base is not None:
        key_changing(st._base.track, "rc_members", st._rc_members, rid)
    st._rc_members[rid] = (run, other)


def svc_rescan(st: ClusterState, sid: str) -> None:
    svc = st.services[sid]
    sel = svc["selector"]
    if st._base is not None:
        key_changing(st._base.track, "svc_members", st._svc_members, sid)
    st._svc_members[sid] = Members.of(
        pid for pid in st._pods_by_ns.get(svc["namespace"], ())
        if st.pods[pid]["ready"] is True and matches(sel, st.pods[pid]["labels"])
    )


def rebuild_selectors(st: ClusterState) -> None:
    """File every RC's and service's selector again (after a snapshot load). Each is decoded
    and dropped at once: a service holds its endpoints (2,897 services held decoded were
    95 MiB of a cold read's peak at the large profile)."""
    st._rc_sel = {}
    st._svc_sel = {}
    for rid, rc in raw_items(st.rcs):
        sel_add(st._rc_sel, rc["namespace"], rid, rc["selector"])
    for sid, svc in raw_items(st.services):
        sel_add(st._svc_sel, svc["namespace"], sid, svc["selector"])


def rebuild_indexes(st: ClusterState) -> None:
    """Recompute every derived index from the entities (after a snapshot load; not while a
    delta's base is tracked: the changes are not noted, tracking.py).

    Selectors are filed first, then each live pod finds its RCs and services through
    them, as an event does (``index_pod``): work in the pods times the few candidates
    each, not in the pods times every RC and service (rescanning each selector over
    its namespace took 67 of 70 s to load a 21,000-pod, 660-RC snapshot)."""
    st._pods_by_ns = {}
    rebuild_selectors(st)
    # read once, not kept: a fork's own tables would copy each
    rcs: dict[str, Any] = dict(raw_items(st.rcs))
    svcs: dict[str, Any] = dict(raw_items(st.services))
    st._rc_members = {rid: (Members(), Members()) for rid in rcs}
    st._svc_members = {sid: Members() for sid in svcs}
    joined_rcs: set[str] = set()
    joined_svcs: set[str] = set()
    for _, pod in raw_items(st.pods):  # decoded one at a time, not kept (packed.py)
        index_pod(st, pod, joined_rcs, joined_svcs, tables=(rcs, svcs))
