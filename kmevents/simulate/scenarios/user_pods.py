"""Pods users make and delete by hand: batch jobs, a pod no agent can hold, deleted RC pods.

Batch jobs (backups, reports, migrations, ETL) run as bare pods without an RC,
up to a tenth of the target pod count at once (``batch_job``); they finish or
fail minutes after they start and are garbage-collected later. The large
profile's jobs keep arriving without a cap, each pod named after its job
(``run_job``). Someone asks
for a Spark shell with 48 CPUs and 192 GiB that no agent has: it stays
Pending with FailedScheduling and k8sm's backoff until its owner deletes it
(``unschedulable_pod``). A user deletes a running pod of an RC, and the RC
replaces it (``user_delete_pod``).
"""

from __future__ import annotations

from kmevents.simulate.model import Pod
from kmevents.simulate.scenarios.pods import create_pod, delete_pod, pick_rc_pod
from kmevents.simulate.scenarios.world import World

BATCH_JOBS: tuple[tuple[str, str, str, float, float], ...] = (
    ("default", "backup", "registry.local/ops/backup:2.1", 0.5, 512.0),
    ("analytics", "nightly-report", "registry.local/bi/report-job:0.9", 1.0, 2048.0),
    ("default", "db-migrate", "registry.local/shop/migrate:1.4", 0.25, 256.0),
    ("analytics", "etl", "registry.local/bi/etl:3.0", 2.0, 4096.0),
)
"""(namespace, job name, image, cpus, mem) of the batch jobs users run."""


def user_delete_pod(w: World) -> None:
    pod = pick_rc_pod(w)
    if pod is not None:
        delete_pod(w, pod, w.actor_user(), None)


def batch_job(w: World) -> None:
    if w.batch_live >= max(3, w.cfg.target_pods // 10):
        return
    ns, name, image, cpus, mem = BATCH_JOBS[int(w.rng.random() * len(BATCH_JOBS))]
    w.batch_live += 1
    create_pod(w, ns, f"{name}-{w.suffix()}", {"job": name}, {}, [],
               [(name, image)], None, cpus, mem, batch=True, actor=w.actor_user())


def run_job(w: World) -> None:
    """A Job's one pod, named after its job (``etl-1234-x7k2p``): a queue of jobs that keeps
    arriving, without the cap of ``batch_job`` (the large profile's jobs)."""
    ns, name, image, cpus, mem = job_template(w)
    w.batch_live += 1
    w.job_seq += 1
    create_pod(w, ns, job_pod_name(w, name), {"job": name}, {}, [], [(name, image)], None,
               cpus, mem, batch=True, actor=w.actor_user())


def job_template(w: World) -> tuple[str, str, str, float, float]:
    """One of ``BATCH_JOBS``, drawn."""
    return BATCH_JOBS[int(w.rng.random() * len(BATCH_JOBS))]


def job_pod_name(w: World, name: str) -> str:
    """The pod of job number ``w.job_seq`` of kind ``name``."""
    return f"{name}-{w.job_seq}-{w.suffix()}"


def unschedulable_pod(w: World) -> None:
    """Someone asks for more than any agent has: the pod stays Pending until deleted."""
    if w.unschedulable_live >= 2:
        return
    w.unschedulable_live += 1
    pod = create_pod(w, "analytics", f"spark-shell-{w.suffix()}",
                     {"app": "spark-shell", "kmevents.sim/unschedulable": "true"}, {}, [],
                     [("shell", "mesosphere/spark:1.6.0")], None, 48.0, 196608.0,
                     batch=False, actor=w.actor_user())
    w.after(w.uniform(300, 1200), give_up_pending, pod)


def give_up_pending(w: World, pod: Pod) -> None:
    if pod.uid in w.pods and not pod.deleting:
        delete_pod(w, pod, w.actor_user(), None)
