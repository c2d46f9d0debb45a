"""The Mesos allocator: one agent's unused resources offered to one framework.

Drawn by weight more than anything else (``allocate``): an idle active
agent's free cpus, mem, disk and ports go to k8sm when it has pods pending
(else about half the time), otherwise to a framework whose decline filter
on that agent has run out. What the framework makes of the offer is its
own: k8sm holds it for its scheduling loop and expires it after
``OFFER_TTL`` (or, rarely, declines it at once as ``compat``), and where the
profile says so puts a waiting pod on it at once (``Tuning.launch_on_offer``);
Marathon and Spark answer within a fraction of a second (``other_frameworks.py``).
"""

from __future__ import annotations

from kmevents.simulate.clock import US
from kmevents.simulate.model import Offer
from kmevents.simulate.scenarios.k8sm_scheduler import offer_arrived
from kmevents.simulate.scenarios.offers import OFFER_TTL, decline, offer_expired
from kmevents.simulate.scenarios.other_frameworks import other_offer
from kmevents.simulate.scenarios.world import World


def allocate(w: World) -> None:
    """The Mesos allocator offers one agent's unused resources to one framework."""
    agent = w.idle_agents.choice(w.rng)
    if agent is None:
        return
    cpus, mem, disk = agent.free()
    if cpus < 0.1 or mem < 64:
        return
    now = w.now
    refuse = agent.refuse_until
    k8sm = w.frameworks[0]
    fw = None
    if refuse[0] <= now and (w.pending or w.rng.random() < 0.55):
        fw = k8sm
    else:
        frameworks = w.frameworks
        for _ in range(3):
            cand = frameworks[int(w.rng.random() * len(frameworks))]
            if cand.live and refuse[cand.idx] <= now:
                fw = cand
                break
    if fw is None:
        return
    w.offer_seq += 1
    oid = f"{w.master.id}-O{w.offer_seq}"
    port = agent.next_port
    t = w.tick()
    eid = w.emit("offer.offered", "OFFERS", "master", t,
                 {"offer": {"id": oid, "framework_id": fw.id, "agent_id": agent.id,
                            "hostname": agent.hostname, "resources": [
                                {"name": "cpus", "role": "*", "scalar": cpus, "ranges": None},
                                {"name": "mem", "role": "*", "scalar": mem, "ranges": None},
                                {"name": "disk", "role": "*", "scalar": disk, "ranges": None},
                                {"name": "ports", "role": "*", "scalar": None,
                                 "ranges": [[port, 32000]]}]}},
                 f"offer.offered|{oid}", oid, None, w.actor_master())
    offer = Offer(oid, agent, fw, cpus, mem, disk, eid, t + int(OFFER_TTL * US))
    agent.offer = offer
    w.idle_agents.discard(agent)
    w.offers[oid] = offer
    if fw is k8sm:
        if w.rng.random() < 0.03:
            w.after(w.uniform(0.01, 0.1), decline, offer, "compat", None)
        else:
            w.k8sm_offers.add(offer)
            w.after(OFFER_TTL, offer_expired, offer)
            if w.tuning.launch_on_offer and w.pending:
                offer_arrived(w, offer)
    else:
        w.after(w.uniform(0.01, 0.3), other_offer, offer)
