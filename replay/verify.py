"""Does etcd equal the fold of the log? (the core of ``kmevents verify``)

For each partition checkpoint of the live generation: fold the partition's
records ``0..checkpoint.offset`` with the reducer, recompute every cluster's
chain head, and compare key by key with the entities etcd holds for those
clusters. A key whose ``mod_revision`` is newer than the checkpoint's was
written ahead of it by an event in flight (an oversized effect split over
several transactions): it is reported as ``ahead``, not as drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from kmevents.processors.checkpoint import Checkpoint
from kmevents.replay import logsource

from kmevents import chain, layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.contract import DecodeError, decode_fast
from kmevents.reducer import REDUCER_VERSION, ClusterState, apply
from kmevents.settings import Settings


@dataclass
class Finding:
    kind: str  # missing | extra | different | ahead | chain | reducer_version
    cluster: str
    key: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "cluster": self.cluster, "key": self.key, "detail": self.detail}


@dataclass
class Report:
    checked_keys: int = 0
    checkpoints: dict[int, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    annotations: dict[str, int] = field(default_factory=dict)

    @property
    def drift(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in ("missing", "extra", "different", "chain")]

    @property
    def clean(self) -> bool:
        return not self.drift


async def verify(settings: Settings, clusters: list[str] | None = None) -> Report:
    gen = layout.live_generation()
    prefix = settings.etcd.prefix
    report = Report()
    async with etcd_adapter.client(settings.etcd) as c:
        cprefix = layout.checkpoints_prefix(f"{prefix}/{gen}")
        _, ckvs = await etcd_adapter.range_at(c, cprefix, range_end=etcd_adapter.prefix_end(cprefix))
        for kv in ckvs:
            ckpt = Checkpoint.from_bytes(kv.value, mod_revision=kv.mod_revision)
            report.checkpoints[ckpt.partition] = ckpt.offset
            wanted = [cl for cl in ckpt.chains if clusters is None or cl in clusters]
            if not wanted:
                continue
            if ckpt.reducer_version != REDUCER_VERSION:
                report.findings.append(Finding("reducer_version", ",".join(wanted), "-",
                                               f"derived by reducer {ckpt.reducer_version}, this is {REDUCER_VERSION}"))
                continue
            states, heads = await _fold_partition(settings, ckpt.partition, ckpt.offset, report)
            for cluster in wanted:
                if heads.get(cluster) != ckpt.chains[cluster]:
                    report.findings.append(Finding("chain", cluster, "-",
                                                   f"checkpoint {ckpt.chains[cluster]} log {heads.get(cluster)}"))
                sp = layout.state_prefix(prefix, cluster, gen)
                _, kvs = await etcd_adapter.range_at(c, sp, range_end=etcd_adapter.prefix_end(sp))
                stored = {layout.split_entity_key(sp, e.key): e for e in kvs}
                expected: dict[tuple[str, str], bytes] = {}
                st = states.get(cluster)
                if st is not None:
                    for kind in st.kinds:
                        for id, value in st.entities(kind):
                            expected[(kind, id)] = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                for k in sorted(set(stored) | set(expected)):
                    report.checked_keys += 1
                    name = f"{k[0]}/{k[1]}"
                    if k in stored and stored[k].mod_revision > ckpt.mod_revision:
                        report.findings.append(Finding("ahead", cluster, name, "written ahead of the checkpoint"))
                    elif k not in stored:
                        report.findings.append(Finding("missing", cluster, name))
                    elif k not in expected:
                        report.findings.append(Finding("extra", cluster, name))
                    elif stored[k].value != expected[k]:
                        report.findings.append(Finding("different", cluster, name,
                                                       _diff(orjson.loads(expected[k]), orjson.loads(stored[k].value))))
    return report


async def _fold_partition(settings: Settings, partition: int, offset: int, report: Report
                          ) -> tuple[dict[str, ClusterState], dict[str, str]]:
    states: dict[str, ClusterState] = {}
    heads: dict[str, str] = {}
    for rec in await logsource.records(settings, partition, 0, offset):
        cluster = rec.key.decode() if rec.key else "_unkeyed"
        heads[cluster] = chain.link(heads.get(cluster, chain.GENESIS), rec.key, rec.value)
        try:
            ev = decode_fast(rec.value or b"")
        except DecodeError:
            continue
        st = states.get(cluster)
        if st is None:
            st = states[cluster] = ClusterState.empty(cluster)
        try:
            for a in apply(st, ev, partition=partition, offset=rec.offset):
                k = a.get("kind", "other") if isinstance(a, dict) else "other"
                report.annotations[k] = report.annotations.get(k, 0) + 1
        except Exception:  # noqa: BLE001 - the worker dead-letters these too
            continue
    return states, heads


def _diff(expected: Any, stored: Any, path: str = "") -> str:
    if isinstance(expected, dict) and isinstance(stored, dict):
        for k in sorted(set(expected) | set(stored)):
            if expected.get(k) != stored.get(k):
                return _diff(expected.get(k), stored.get(k), f"{path}.{k}" if path else str(k))
        return ""
    return f"{path or '.'}: log says {expected!r}, etcd has {stored!r}"
