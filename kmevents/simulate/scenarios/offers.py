"""An outstanding offer's ends: expired by k8sm, declined with a filter, rescinded by the master.

k8sm holds an offer ``OFFER_TTL`` seconds (its ``offer-ttl`` default) and then
expires it itself (``offer.expired``, stream ``k8sm``) and declines it; every
decline carries the framework's ``refuse_seconds`` filter (k8sm: Mesos' default
5 s; Marathon and Spark: 120 s), during which the allocator does not offer that
agent to that framework again. The master rescinds an offer when its agent is
lost or drained, when a master fails over, or when k8sm changes leader. An
offer leaves the world when it is accepted, declined or rescinded
(``drop_offer``); its agent becomes the allocator's candidate again.
"""

from __future__ import annotations

from kmevents.simulate.clock import US
from kmevents.simulate.emit import K8SM
from kmevents.simulate.model import Offer
from kmevents.simulate.scenarios.world import A_K8SM, World

# k8sm's scheduler defaults (docs/contrib/mesos "Tuning": offer-ttl = 5s, offer-linger-ttl = 2m;
# declines carry Mesos' default filter, refuse_seconds = 5).
OFFER_TTL = 5.0
OFFER_LINGER = 120.0


def drop_offer(w: World, offer: Offer) -> None:
    w.offers.pop(offer.id, None)
    w.k8sm_offers.discard(offer)
    agent = offer.agent
    if agent.offer is offer:
        agent.offer = None
        if agent.state == "active":
            w.idle_agents.add(agent)


def offer_expired(w: World, offer: Offer) -> None:
    if offer.id not in w.offers:
        return
    t = w.tick()
    eid = w.emit("offer.expired", "OFFER_TTL", "scheduler", t, {"offer_id": offer.id},
                 f"offer.expired|{offer.id}", offer.id, offer.event_id, A_K8SM, K8SM)
    decline(w, offer, "expired", eid)


def decline(w: World, offer: Offer, reason: str, cause: str | None) -> None:
    if offer.id not in w.offers:
        return
    drop_offer(w, offer)
    fw = offer.framework
    refuse = fw.refuse_seconds
    t = w.tick()
    w.emit("offer.declined", "DECLINE", "scheduler", t,
           {"offer_id": offer.id, "reason": reason, "refuse_seconds": refuse},
           f"offer.declined|{offer.id}", offer.id, cause or offer.event_id,
           A_K8SM if fw.kind == "k8sm" else {"kind": "scheduler", "name": fw.name}, K8SM)
    offer.agent.refuse_until[fw.idx] = t + int(refuse * US)
    offer.agent.last_declined = (offer.id, t)


def rescind(w: World, offer: Offer, cause: str | None = None) -> None:
    drop_offer(w, offer)
    t = w.tick()
    w.emit("offer.rescinded", "RESCIND", "master", t, {"offer_id": offer.id},
           f"offer.rescinded|{offer.id}", offer.id, cause, w.actor_master())
