"""The volume sources pods mount: NFS, Ceph RBD and CephFS, GCE persistent disks, emptyDir.

Shaped as a Kubernetes pod spec's ``volumes`` entries (``name``, ``kind`` and
its ``source``); the Ceph ones name the cluster's three monitors and the
``ceph-secret``. A pod with a Ceph volume sometimes fails to map it at start
(FailedMount, in ``k8sm_scheduler.py``).
"""

from __future__ import annotations

from typing import Any

from kmevents.simulate.scenarios.world import World


def rbd(w: World, image: str) -> dict[str, Any]:
    """A Ceph RBD image of pool ``kube`` (one per MySQL server), mounted read-write as ext4."""
    c = w.cfg.cluster
    return {"name": f"{image}-data", "kind": "rbd",
            "source": {"monitors": [f"10.0.2.{i}:6789" for i in (11, 12, 13)], "pool": "kube",
                       "image": image, "user": "kube", "secretRef": {"name": "ceph-secret"},
                       "fsType": "ext4", "readOnly": False, "cluster": c}}


def volume(w: World, kind: str, name: str) -> dict[str, Any]:
    """An application RC's volume of ``kind``: nfs, cephfs, gcePersistentDisk, else emptyDir."""
    if kind == "nfs":
        return {"name": "static", "kind": "nfs",
                "source": {"server": f"nfs.{w.cfg.cluster}.local", "path": "/exports/www",
                           "readOnly": True}}
    if kind == "cephfs":
        return {"name": "spool", "kind": "cephfs",
                "source": {"monitors": [f"10.0.2.{i}:6789" for i in (11, 12, 13)],
                           "path": f"/logs/{name}", "user": "kube",
                           "secretRef": {"name": "ceph-secret"}, "readOnly": False}}
    if kind == "gcePersistentDisk":
        return {"name": "data", "kind": "gcePersistentDisk",
                "source": {"pdName": f"{name}-data", "fsType": "ext4", "partition": 0,
                           "readOnly": True}}
    return {"name": "scratch", "kind": "emptyDir", "source": {"medium": ""}}
