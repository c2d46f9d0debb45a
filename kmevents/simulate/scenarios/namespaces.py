"""Namespaces: the seeded ones, and CI namespaces that come and go with their test pods.

Now and then CI creates a namespace ``ci-N`` and one to three test-runner
pods in it (``namespace_lifecycle``, drawn by weight); minutes later the
namespace turns Terminating, the namespace controller deletes its pods, and
the namespace is deleted a few seconds after.
"""

from __future__ import annotations

from kmevents.simulate.emit import K8S
from kmevents.simulate.scenarios.pods import create_pod, delete_pod
from kmevents.simulate.scenarios.world import A_NSCTL, World


def namespace_upsert(w: World, name: str, phase: str) -> None:
    labels = {"name": name}
    w.namespaces[name] = {"name": name, "phase": phase, "labels": labels}
    t = w.tick()
    w.emit("namespace.upserted", "ADDED" if phase == "Active" else "MODIFIED", "apiserver", t,
           {"namespace": {"name": name, "phase": phase, "labels": labels}},
           f"namespace.upserted|{name}|{w.em.fmt(t)}", None, None,
           w.actor_user() if phase == "Active" else A_NSCTL, K8S)


def namespace_deleted(w: World, name: str) -> None:
    w.namespaces.pop(name, None)
    t = w.tick()
    w.emit("namespace.deleted", "DELETED", "apiserver", t, {"name": name},
           f"namespace.deleted|{name}|{w.em.fmt(t)}", None, None, A_NSCTL, K8S)


def namespace_lifecycle(w: World) -> None:
    w.ns_seq += 1
    ns = f"ci-{w.ns_seq}"
    namespace_upsert(w, ns, "Active")
    for _ in range(1 + int(w.rng.random() * 3)):
        w.batch_live += 1
        create_pod(w, ns, f"test-runner-{w.suffix()}", {"job": "test-runner"}, {}, [],
                   [("runner", "registry.local/ci/runner:5")], None, 0.5, 512.0,
                   batch=True, actor=w.actor_user())
    w.after(w.uniform(120, 900), namespace_terminate, ns)


def namespace_terminate(w: World, ns: str) -> None:
    namespace_upsert(w, ns, "Terminating")
    for pod in list(w.ns_pods.get(ns, {}).values()):
        delete_pod(w, pod, A_NSCTL, "namespace-deleted")
    w.after(w.uniform(5, 20), namespace_deleted, ns)
