"""The workloads a simulated cluster starts with: the seed's cases and the application RCs.

kube-system runs kube-dns (etcd, kube2sky, skydns and exechealthz in one
pod, on an emptyDir) and kube-ui, each behind its service at a fixed portal
IP; namespace ``mysql`` runs a MySQL master and two replicas, each on its own
Ceph RBD image, behind a master service and a replicas service. Application
RCs follow ``APP_TEMPLATES`` (nginx on NFS, logstash on CephFS, reports on a
GCE persistent disk, redis on emptyDir, ...), as many and as large as the
target pod count asks (about 90% of it; batch jobs take the rest), each with
a service when its template has a port. Users scale and roll these
application RCs later (``replication.py``); the system RCs stay as they are.
"""

from __future__ import annotations

from kmevents.simulate.scenarios.namespaces import namespace_upsert
from kmevents.simulate.scenarios.replication import create_rc
from kmevents.simulate.scenarios.services import create_service, next_portal_ip
from kmevents.simulate.scenarios.volumes import rbd, volume
from kmevents.simulate.scenarios.world import World

APP_TEMPLATES: tuple[tuple[str, str, str, float, float, str | None, int | None], ...] = (
    ("frontend", "prod", "nginx:1.9.9", 0.25, 256.0, "nfs", 80),
    ("api", "prod", "registry.local/shop/api:1.4.{tag}", 0.5, 512.0, None, 8080),
    ("worker", "prod", "registry.local/shop/worker:1.4.{tag}", 1.0, 1024.0, None, None),
    ("redis", "prod", "redis:3.0.{tag}", 0.5, 1024.0, "emptyDir", 6379),
    ("logstash", "logging", "logstash:2.1.{tag}", 0.5, 1024.0, "cephfs", 5044),
    ("reports", "analytics", "registry.local/bi/reports:0.{tag}", 0.5, 768.0, "gcePersistentDisk", 8000),
    ("memcached", "prod", "memcached:1.4.{tag}", 0.25, 512.0, None, 11211),
    ("staging-web", "staging", "nginx:1.9.{tag}", 0.1, 128.0, None, 80),
)
"""(name, namespace, image, cpus, mem, volume kind, service port) of the application RCs;
``{tag}`` in an image is what a rolling update bumps."""


def create_workloads(w: World) -> None:
    """The seed cases, then application RCs (and their services) sized to the target pods."""
    cfg = w.cfg
    # The seed's own cases: kube-dns (skydns) and kube-ui in kube-system.
    dns = create_rc(w, "kube-system", "kube-dns-v9", 1,
                    [("etcd", "gcr.io/google_containers/etcd:2.0.9"),
                     ("kube2sky", "gcr.io/google_containers/kube2sky:1.11"),
                     ("skydns", "gcr.io/google_containers/skydns:2015-10-13-8c72f8c"),
                     ("healthz", "gcr.io/google_containers/exechealthz:1.0")],
                    [{"name": "etcd-storage", "kind": "emptyDir", "source": {"medium": ""}}],
                    0.4, 200.0, system=True,
                    labels={"k8s-app": "kube-dns", "version": "v9",
                            "kubernetes.io/cluster-service": "true"})
    create_service(w, "kube-system", "kube-dns", [dns], "10.10.10.10",
                   [{"name": "dns", "port": 53, "protocol": "UDP", "target_port": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "target_port": 53}])
    ui = create_rc(w, "kube-system", "kube-ui-v4", 1,
                   [("kube-ui", "gcr.io/google_containers/kube-ui:v4")], [], 0.1, 50.0,
                   system=True,
                   labels={"k8s-app": "kube-ui", "version": "v4",
                           "kubernetes.io/cluster-service": "true"})
    create_service(w, "kube-system", "kube-ui", [ui], "10.10.10.11",
                   [{"name": "http", "port": 80, "protocol": "TCP", "target_port": 8080}])
    # MySQL master and replicas, each on its own Ceph rbd image.
    namespace_upsert(w, "mysql", "Active")
    master = create_rc(w, "mysql", "mysql-master", 1, [("mysql", "mysql:5.6")],
                       [rbd(w, "mysql-master")], 2.0, 4096.0, system=True,
                       labels={"app": "mysql", "role": "master"})
    create_service(w, "mysql", "mysql-master", [master], "10.10.10.12",
                   [{"name": "mysql", "port": 3306, "protocol": "TCP", "target_port": 3306}])
    replicas = []
    for i in range(2):
        rep = create_rc(w, "mysql", f"mysql-replica-{i}", 1, [("mysql", "mysql:5.6")],
                        [rbd(w, f"mysql-replica-{i}")], 1.0, 4096.0, system=True,
                        labels={"app": "mysql", "role": "replica", "replica": str(i)})
        replicas.append(rep)
    create_service(w, "mysql", "mysql-replicas", replicas, "10.10.10.13",
                   [{"name": "mysql", "port": 3306, "protocol": "TCP", "target_port": 3306}],
                   selector={"app": "mysql", "role": "replica"})
    # Application RCs sized to the target pod count (leaving ~10% for batch jobs).
    budget = max(len(APP_TEMPLATES), int(cfg.target_pods * 0.9) - 5)
    n_rcs = max(len(APP_TEMPLATES), budget // 40)
    per = max(1, budget // n_rcs)
    for i in range(n_rcs):
        name, ns, image, cpus, mem, vol, port = APP_TEMPLATES[i % len(APP_TEMPLATES)]
        if i >= len(APP_TEMPLATES):
            name = f"{name}-{i // len(APP_TEMPLATES) + 1}"
        replicas_n = max(1, int(per * w.uniform(0.5, 1.5)))
        volumes = [volume(w, vol, name)] if vol else []
        rc = create_rc(w, ns, name, replicas_n, [(name.split("-")[0], image.format(tag=1))],
                       volumes, cpus, mem, system=False)
        rc.image = image
        w.app_rcs.append(rc)
        if port:
            create_service(w, ns, name, [rc], next_portal_ip(w),
                           [{"name": "http" if port in (80, 8080, 8000) else "tcp",
                             "port": port, "protocol": "TCP", "target_port": port}])
