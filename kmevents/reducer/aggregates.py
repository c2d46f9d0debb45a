"""Agent and role resource totals: kept exact, materialised when read.

What the reducer promises (and the tests check on every read):

    agent.allocated_by_role = sum of the resources of its tasks in STAGING,
                              STARTING, RUNNING or KILLING, by role
    agent.offered_by_role   = sum of the resources of its outstanding offers
    agent.allocated/offered = the same summed over roles
    role.allocated/offered  = the same over every agent

Offers are the busiest events in the log and each one would otherwise touch
three totals (the agent's flat and by-role totals and the role's), eight to
twelve fixed-point additions per event. Instead an event only records what
changed: an offer opening or closing adds or removes its id in the agent's
set of outstanding offers; a task starting or stopping to count adds or
subtracts its resources in the agent's running by-role sum (``_alloc``). The
agent goes into ``st._stale``. Whenever the state is read (``entity``,
``entities``, ``take_dirty``, ``to_snapshot``) ``materialize`` rewrites the
stale agents' four fields and pushes the difference into the roles.

Because every sum is snapped to Mesos' fixed point (resources.py), the result
does not depend on when the reads happen or in which order the terms were
added: reading after every event or once at the end gives the same bytes.
Worked example: offers o1 {cpus 0.1} and o2 {cpus 0.2} open on agent a,
o1 closes. Eagerly: 0.1 -> 0.3 -> 0.2. Lazily, at the next read: sum over
{o2} = 0.2, and role "*" gets 0.2 - (its previous contribution from a, 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmevents.reducer.packed import ids_in, value_of
from kmevents.reducer.resources import Summary, add_flat, flatten

if TYPE_CHECKING:
    from kmevents.reducer.state import ClusterState


#: an agent's total for a role it does not have (a shared constant: a literal
#: ``{}`` default would build a dict for every resource of every launch)
_NOTHING: dict[str, float] = {}


def ensure_roles(st: ClusterState, summ: Summary, t: str) -> None:
    """Create the role entities ``summ`` mentions (``since`` is when first seen)."""
    roles = st.roles
    for role in summ:
        if role not in roles:
            roles[role] = {"name": role, "weight": None, "frameworks": [], "offered": {},
                           "allocated": {}, "since": t}
            st._dirty.add(("role", role))


def _copy(summ: Summary) -> Summary:
    return {role: dict(amts) for role, amts in summ.items()}


def _flat(summ: Summary) -> dict[str, float]:
    """``flatten(summ)``; the one role's own dict when that equals it (same keys in the same
    order: ``flatten`` keeps them), shared instead of a copy."""
    flat = flatten(summ)
    if len(summ) == 1:
        (only,) = summ.values()
        if only == flat:
            return only
    return flat


def _sum_offers(st: ClusterState, oids: Any) -> Summary:
    out: Summary = {}
    offers = st.offers
    for oid in oids:
        for role, amts in offers[oid]["resources"].items():
            d = out.get(role)
            if d is None:
                out[role] = dict(amts)
            else:
                add_flat(d, amts, 1.0)
    return out


def _push(st: ClusterState, old: Summary, new: Summary, field: str) -> None:
    """Add ``new - old`` to the roles' ``field``; mark the roles that moved."""
    if old == new:
        return
    for role in old.keys() | new.keys():
        o = old.get(role, {})
        n = new.get(role, {})
        if o == n:
            continue
        r = st.roles[role]
        add_flat(r[field], o, -1.0)
        add_flat(r[field], n, 1.0)
        st._dirty.add(("role", role))


def materialize(st: ClusterState) -> None:
    """Bring every stale agent's totals (and the roles) up to date."""
    if not st._stale:
        return
    if st._base is not None:  # what a delta's totals hold (delta.py, format 4)
        st._base.aggs.update(st._stale)
    for aid in sorted(st._stale):
        alloc = _copy(st._alloc.get(aid, {}))
        oids = st._agent_offers.get(aid)
        offered = _sum_offers(st, oids) if oids else {}
        old_alloc, old_offered = st._contrib.get(aid, ({}, {}))
        _push(st, old_alloc, alloc, "allocated")
        _push(st, old_offered, offered, "offered")
        if alloc or offered:
            st._contrib[aid] = (alloc, offered)
        else:
            st._contrib.pop(aid, None)
        ag = st.agents.get(aid)
        if ag is not None:
            # the contribution's own dicts: neither is ever changed in place (the next
            # materialize replaces both), so the agent shares them (12,500 agents: ~7 MiB)
            ag["allocated_by_role"] = alloc
            ag["allocated"] = _flat(alloc)
            ag["offered_by_role"] = offered
            ag["offered"] = _flat(offered)
    st._stale.clear()


def offer_opened(st: ClusterState, aid: str, oid: str) -> None:
    s = st._agent_offers.get(aid)
    if s is None:
        st._agent_offers[aid] = {oid: None}
    else:
        s[oid] = None
    st._stale.add(aid)


def offer_closed(st: ClusterState, aid: str, oid: str) -> None:
    s = st._agent_offers.get(aid)
    if s is not None:
        s.pop(oid, None)
        if not s:
            del st._agent_offers[aid]
    st._stale.add(aid)


def task_counted(st: ClusterState, aid: str, summ: Summary, sign: float) -> list[str]:
    """Add ``sign * summ`` to agent ``aid``'s allocation; return names now over its total."""
    alloc = st._alloc.get(aid)
    if alloc is None:
        alloc = st._alloc[aid] = {}
    for role, amts in summ.items():
        d = alloc.get(role)
        if d is None:
            d = alloc[role] = {}
        for name, v in amts.items():  # add_flat, inlined (every task that starts or stops counting)
            x = ((d.get(name, 0.0) + sign * v) * 1000.0 + 0.5) // 1.0 / 1000.0
            if x:
                d[name] = x
            elif name in d:
                del d[name]
        if not d:
            del alloc[role]
    if not alloc:
        del st._alloc[aid]
    st._stale.add(aid)
    if sign < 0:
        return []
    ag = st.agents.get(aid)
    if ag is None:
        return []
    total = ag["total_by_role"]
    return [f"{role}/{name}" for role, amts in summ.items() for name in amts
            if alloc[role].get(name, 0.0) > total.get(role, _NOTHING).get(name, 0.0)]


def rebuild(st: ClusterState) -> None:
    """Recompute the outstanding-offer index from the offers (after a snapshot load or a delta):
    a lazy table's (snapshot.py) from its conditions, decoding only the outstanding offers."""
    st._agent_offers = {}
    offers = st.offers
    for oid in ids_in(offers, "outstanding"):
        o = value_of(offers, oid)  # (not kept: a fork's read would copy it, a lazy table keep it)
        st._agent_offers.setdefault(o["agent_id"], {})[oid] = None
