"""``kmevents verify --repair``: rebuild a cluster's state under a fresh generation, then switch readers.

Steps (DESIGN.md rule 9: the live view never shows a half-rebuilt state):

1. **Ownership.** A live derivation worker owning the cluster's partition would
   keep writing while we rebuild. We detect it through Kafka's consumer group
   (the admin API's DescribeGroups: a member whose assignment holds the
   partition), which answers whether anyone owns it right now, even a worker
   with nothing to write. A recent checkpoint write by another worker id would
   miss an idle worker, so it is not used. With a live owner, repair refuses
   unless ``--force-fenced``: then the checkpoint is first re-put (same content,
   ``worker: "verify-repair"``), which moves its mod revision, so the live
   worker's next transaction fails its compare and it gives the partition up.
2. **Plan.** Fold the cluster's log to the checkpoint offset and diff it with
   the generation readers use now. A **preview** (``--repair`` without
   ``--yes``) stops here and writes nothing: an earlier version staged a full
   copy on every preview (19,296 keys per run) and left it behind.
3. **Stage** (``--yes``): write every entity under
   ``clusters/<c>/<live generation>.repair-<UTC time>/`` (a fresh prefix nobody
   reads), in transactions under etcd's limits, then that generation's own
   checkpoint (``<prefix>/<generation>/_checkpoints/<partition>``): what the
   staged keys are vouched by until a worker writes the live checkpoint again.
4. **Switch** (``--yes``): put ``current = {"generation": new}`` in a
   transaction guarded by the checkpoint's mod revision, so a worker that
   moved on meanwhile makes the switch fail instead of pointing readers at a
   stale rebuild. A switch that fails removes what it staged.

``staged_generations`` lists a cluster's generations that readers do not use
(a staged copy left by an older version or an interrupted run, the generation
a switch left behind); ``discard`` deletes them (``verify --discard``). The
generation ``current`` names is never discarded, nor the live checkpoints.

After the switch, a derivation worker that (re)takes the partition follows
``current`` (``PartitionDeriver.load_generations``): it keeps writing the
cluster's entities under the repaired generation and leaves ``current`` alone.
A worker fenced by ``--force-fenced`` re-takes its partition after a pause,
reloading checkpoint and state from etcd.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
from kmevents.replay import logsource
from kmevents.replay.diffing import StateDiff, diff_tables
from kmevents.replay.sources import KafkaSource
from kmevents.replay.verify import Checks, expected_entities, fold_pass

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.adapters import kafka as kafka_adapter
from kmevents.errors import CheckFailed, UsageError
from kmevents.settings import Settings
from kmevents.store.checkpoint import Checkpoint, read_checkpoint
from kmevents.store.generations import current_generation

FENCE_WORKER = "verify-repair"


class LiveOwner(CheckFailed):
    """A live worker owns the partition: repair would race with it."""

    exit_code = 2


@dataclass
class Plan:
    cluster: str
    partition: int
    old_generation: str
    new_generation: str
    checkpoint: Checkpoint
    entities: dict[tuple[str, str], bytes]
    diff: StateDiff
    owners: list[str] = field(default_factory=list)
    fenced: bool = False
    staged: int = 0
    switched: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "partition": self.partition, "from_generation": self.old_generation,
                "to_generation": self.new_generation, "checkpoint_offset": self.checkpoint.offset,
                "keys_staged": self.staged, "changes": self.diff.counts(), "live_owners": self.owners,
                "fenced": self.fenced, "switched": self.switched}


async def live_owners(settings: Settings, partition: int, group_id: str) -> list[str]:
    """Members of ``group_id`` assigned the events topic's ``partition`` right now."""
    members = await kafka_adapter.group_assignment(settings.kafka, group_id)
    topic = settings.kafka.events_topic
    return sorted(m for m, parts in members.items() if (topic, partition) in parts)


def _tables(entities: dict[tuple[str, str], bytes]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (kind, id), v in entities.items():
        out.setdefault(kind, {})[id] = orjson.loads(v)
    return out


async def plan(settings: Settings, cluster: str, *, group_id: str, force_fenced: bool = False,
               preview: bool = False, now: dt.datetime | None = None) -> Plan:
    """Fold the cluster's log to its checkpoint and diff it with what readers use now.

    ``preview``: write nothing (no fencing either); a live owner is noted in ``owners``
    rather than refused. Otherwise a live owner is refused unless ``force_fenced``.
    """
    prefix = settings.etcd.prefix
    partition = await logsource.partition_of(settings, cluster)
    if partition is None:
        raise UsageError(f"cluster {cluster!r} is not in the partition map", hint="check --cluster")
    owners = await live_owners(settings, partition, group_id)
    if owners and not force_fenced and not preview:
        raise LiveOwner(
            f"a live worker owns partition {partition} of {cluster!r} (group {group_id}: {', '.join(owners)}); "
            "refusing to rebuild under it",
            hint="stop the workers, or pass --force-fenced to fence the live worker first (its next "
                 "transaction then fails and it gives the partition up)")
    async with etcd_adapter.client(settings.etcd) as c:
        old_gen = await current_generation(c, prefix, cluster) or layout.live_generation()
        ckpt = await read_checkpoint(c, prefix, layout.live_generation(), partition)
        if ckpt is None:
            raise UsageError(f"no checkpoint for partition {partition}", hint="run the processors first")
        fenced = False
        if force_fenced and not preview:
            bumped = Checkpoint(**{**ckpt.__dict__, "worker": FENCE_WORKER})
            ok, rev = await etcd_adapter.txn_if_unchanged(c, layout.checkpoint_key(
                f"{prefix}/{layout.live_generation()}", partition), ckpt.mod_revision, {
                layout.checkpoint_key(f"{prefix}/{layout.live_generation()}", partition): bumped.to_bytes()})
            if not ok:
                raise CheckFailed("the checkpoint moved while fencing; try again",
                                  hint="a worker is committing right now")
            ckpt = bumped
            ckpt.mod_revision = rev
            fenced = True
        src = KafkaSource(settings.kafka, settings.kafka.events_topic, partition, cluster)
        res = await fold_pass(src, cluster, Checks(checkpoint_offset=ckpt.offset))
        expected = dict(expected_entities(res.expected)) if res.expected is not None else {}
        sp = layout.state_prefix(prefix, cluster, old_gen)
        stored = {layout.split_entity_key(sp, kv.key): kv.value
                  async for _, kvs in etcd_adapter.range_pages(c, sp, etcd_adapter.prefix_end(sp)) for kv in kvs}
        diff = diff_tables(_tables(stored), _tables(expected))
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S")
        new_gen = f"{layout.live_generation()}.repair-{stamp}"
    return Plan(cluster, partition, old_gen, new_gen, ckpt, expected, diff, owners, fenced)


async def stage(settings: Settings, plan: Plan) -> None:
    """Write the plan's entities under its new generation, then that generation's checkpoint."""
    async with etcd_adapter.client(settings.etcd) as c:
        await _stage(settings, c, plan)


async def plan_and_stage(settings: Settings, cluster: str, *, group_id: str, force_fenced: bool,
                         now: dt.datetime | None = None) -> Plan:
    """``plan`` then ``stage``: what ``verify --repair --yes`` does before it switches."""
    p = await plan(settings, cluster, group_id=group_id, force_fenced=force_fenced, now=now)
    await stage(settings, p)
    return p


async def repair(settings: Settings, cluster: str, *, group_id: str, force_fenced: bool = False) -> Plan:
    """Plan, stage and switch; a switch that fails removes what it staged (and raises)."""
    p = await plan_and_stage(settings, cluster, group_id=group_id, force_fenced=force_fenced)
    try:
        await switch(settings, p)
    except BaseException:
        await discard(settings, cluster, only=[p.new_generation])
        raise
    return p


async def staged_generations(settings: Settings, cluster: str) -> list[dict[str, Any]]:
    """The cluster's generations in etcd, with their key counts and whether readers use it
    (``current``; the live generation when no ``current`` is set)."""
    prefix = settings.etcd.prefix
    base = f"{prefix}/clusters/{cluster}/".encode()
    out: list[dict[str, Any]] = []
    async with etcd_adapter.client(settings.etcd) as c:
        used = await current_generation(c, prefix, cluster) or layout.live_generation()
        start, end = base, etcd_adapter.prefix_end(base)
        while True:  # jump from one generation's subtree to the next
            _, kvs = await etcd_adapter.range_at(c, start, range_end=end, limit=1)
            if not kvs:
                break
            name = kvs[0].key[len(base):].split(b"/", 1)[0]
            sub = base + name + b"/"
            start = etcd_adapter.prefix_end(sub)
            if kvs[0].key == base + b"current":
                continue
            gen = name.decode()
            keys = await etcd_adapter.count_range(c, sub, etcd_adapter.prefix_end(sub))
            out.append({"generation": gen, "keys": keys, "in_use": gen == used,
                        "staged_by_repair": ".repair-" in gen})
    return out


async def discard(settings: Settings, cluster: str, *, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Delete the cluster's generations readers do not use (``only``: just these); what was deleted.

    A repair generation's own keys beside the entities (its checkpoints and snapshot index
    under ``<prefix>/<generation>/``) go with it; the live generation's (shared by every
    cluster of the partition) never do.
    """
    prefix = settings.etcd.prefix
    gone = [g for g in await staged_generations(settings, cluster)
            if not g["in_use"] and (only is None or g["generation"] in only)]
    async with etcd_adapter.client(settings.etcd) as c:
        for g in gone:
            sp = layout.state_prefix(prefix, cluster, g["generation"])
            g["deleted"] = await etcd_adapter.delete_range(c, sp, etcd_adapter.prefix_end(sp))
            if g["staged_by_repair"]:
                own = f"{prefix}/{g['generation']}/".encode()
                g["deleted"] += await etcd_adapter.delete_range(c, own, etcd_adapter.prefix_end(own))
    return gone


async def _stage(settings: Settings, c: etcd_adapter.EtcdClient, plan: Plan) -> None:
    prefix = settings.etcd.prefix
    max_ops = max(1, await etcd_adapter.txn_ops_limit(c, settings.etcd.max_txn_ops) - 1)
    max_bytes = settings.etcd.max_request_bytes // 2
    guard = layout.checkpoint_key(f"{prefix}/{plan.new_generation}", plan.partition)
    batch: dict[bytes, bytes | None] = {}
    size = 0

    async def flush() -> None:
        nonlocal batch, size
        if batch:
            await etcd_adapter.txn_if_unchanged(c, guard, 0, batch)  # the staging generation has no checkpoint yet
            plan.staged += len(batch)
            batch, size = {}, 0

    for (kind, id), value in sorted(plan.entities.items()):
        key = layout.entity_key(prefix, plan.cluster, plan.new_generation, kind, id)
        if len(batch) >= max_ops or size + len(key) + len(value) > max_bytes:
            await flush()
        batch[key] = value
        size += len(key) + len(value)
    await flush()
    # The rebuilt generation's own checkpoint: what it vouches for.
    ck = Checkpoint(**{**plan.checkpoint.__dict__, "generation": plan.new_generation, "worker": FENCE_WORKER})
    await etcd_adapter.txn_if_unchanged(c, guard, 0, {guard: ck.to_bytes()})


async def switch(settings: Settings, plan: Plan) -> None:
    """Point readers at the rebuilt generation, if the checkpoint did not move since the rebuild."""
    prefix = settings.etcd.prefix
    async with etcd_adapter.client(settings.etcd) as c:
        ok, _ = await etcd_adapter.txn_if_unchanged(
            c, layout.checkpoint_key(f"{prefix}/{layout.live_generation()}", plan.partition),
            plan.checkpoint.mod_revision,
            {layout.current_key(prefix, plan.cluster): orjson.dumps({"generation": plan.new_generation})})
    if not ok:
        raise CheckFailed("the checkpoint moved since the rebuild (a worker is writing): not switched",
                          hint="stop the workers or use --force-fenced, then repair again")
    plan.switched = True
