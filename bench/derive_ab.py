"""Derivation alone at the large profile, A/B between source trees, optionally profiled.

    python -m bench.derive_ab [--events 300000] [--scale 0.2] [--runs 2]
                              [--src NAME=PATH ...] [--profile DIR]

One temporary native stack; the large log (``bench.large_log``) is ingested ONCE into one
topic of one partition, then every run derives it from the first record to the checkpoint
at the last in a child process with a fresh etcd prefix, snapshots topic and consumer
group, with the processors' defaults (a full snapshot every 20,000 events, a delta every
4,000, a touched-index block every 1,000). Runs alternate between the ``--src`` trees
(``this`` = the installed tree; ``old=/tmp/wt-old-derive`` a worktree at another commit),
so load on the shared machine hits both alike. Each child reports wall seconds, events/s and
its own CPU seconds (user + system, the worker's whole process: fold, encoding, gRPC,
Kafka client), the etcd server's CPU seconds over the run, and with ``--profile`` a
cProfile of the child (``DIR/<name>-<run>.prof``).

No verify, no reads: ``python -m bench.run large_derive`` does those.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any


def _point_at(src: str) -> None:
    """Import kmevents (and its processors/replay packages) from ``src``, not the editable install."""
    sys.path.insert(0, src)
    for f in sys.meta_path:
        mod = sys.modules.get(getattr(f, "__module__", ""))
        mapping = getattr(mod, "MAPPING", None)
        if isinstance(mapping, dict) and "kmevents" in mapping:
            mapping.update({"kmevents": f"{src}/kmevents", "kmevents.processors": f"{src}/processors",
                            "kmevents.replay": f"{src}/replay"})


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _etcd_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


async def _derive(n: int) -> dict[str, Any]:
    from kmevents.processors.worker import DeriveWorker

    from kmevents import layout
    from kmevents.adapters import etcd as etcd_adapter
    from kmevents.settings import load
    from kmevents.store.checkpoint import Checkpoint

    s = load()
    kw = json.loads(os.environ.get("KMEVENTS_AB_WORKER", "{}"))
    w = DeriveWorker(s, group_id=f"ab-{uuid.uuid4().hex[:8]}", max_records=10_000, **kw)
    await w.start()
    key = layout.checkpoint_key(f"{s.etcd.prefix}/{layout.live_generation()}", 0)
    import gc
    import resource

    gc_s = [0.0, 0.0]

    def _gc_timer(phase: str, info: dict[str, Any]) -> None:  # the cyclic GC's own time in the worker
        if phase == "start":
            gc_s[1] = time.process_time()
        else:
            gc_s[0] += time.process_time() - gc_s[1]

    gc.callbacks.append(_gc_timer)
    async with etcd_adapter.client(s.etcd) as c:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
        task = asyncio.create_task(w.run())
        while True:
            _, kvs = await etcd_adapter.range_at(c, key)
            if kvs and Checkpoint.from_bytes(kvs[0].value).offset >= n - 1:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    gc.callbacks.remove(_gc_timer)
    w.stop_requested.set()
    await task
    children = _children_cpu() - k0  # the snapshot children (processors/offload.py), waited for by now
    async with etcd_adapter.client(s.etcd) as c:  # what was stored: equal across trees that write the same
        from kmevents.store.snapshots import index_entries

        entries = sorted((e["offset"], e.get("kind", "full"), e["bytes"], e["stored_bytes"]) for e in await index_entries(s, c, s.cluster))
    stored = hashlib.sha256(repr(entries).encode()).hexdigest()[:16]
    st = w.stats
    await w.stop()
    rss = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "child_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    return {**rss, "stored": stored, "seconds": took, "cpu": cpu, "children_cpu": children, "rate": n / took, "transactions": st.transactions,
            "snapshots": st.snapshots, "deltas": st.deltas,
            "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime, "gc": gc_s[0],
            "minor_faults": r1.ru_minflt - r0.ru_minflt}


def child(n: int, profile: str | None) -> None:
    src = os.environ.get("KMEVENTS_AB_SRC")
    if os.environ.get("KMEVENTS_AB_LOG"):  # the worker's warnings (snapshots not written...) to a file
        import logging

        h = logging.FileHandler(f"{os.environ['KMEVENTS_AB_LOG']}.{os.getpid()}")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s %(error)s",
                                         defaults={"error": ""}))
        logging.getLogger().addHandler(h)
        logging.getLogger().setLevel(logging.WARNING)
    if src:
        _point_at(src)
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        out = asyncio.run(_derive(n))
        prof.disable()
        prof.dump_stats(profile)
    else:
        out = asyncio.run(_derive(n))
    print("RESULT " + json.dumps(out), flush=True)


def parent(args: argparse.Namespace) -> None:
    from bench._stack import running_stack
    from bench.bench_large_derive import _ingest
    from bench.large_log import large_log
    from kmevents.adapters import kafka as kafka_adapter

    # NAME=PATH[:WORKER_KW_JSON]: the worker's keyword arguments, e.g. new-inline=:{"snapshots_in_child": false}
    srcs = {}
    for x in args.src or ["this="]:
        name, _, rest = x.partition("=")
        path, _, kw = rest.partition(":")
        srcs[name] = (path, kw or "{}")
    log = large_log(args.events, scale=args.scale)
    with running_stack() as s:
        tag = uuid.uuid4().hex[:8]
        s.kafka.events_topic = f"ab{tag}.events"
        s.kafka.partitions = 1
        s.cluster = log.meta["recipe"]["cluster"]
        asyncio.run(kafka_adapter.ensure_topics(s.kafka))
        t = time.perf_counter()
        n = asyncio.run(_ingest(s, log.path))
        print(f"ingested {n:,} events in {time.perf_counter() - t:.0f} s", flush=True)
        etcd_pid = _etcd_pid(s)
        kafka_pid = _kafka_pid(s)
        results: list[tuple[str, dict[str, Any]]] = []
        for run in range(args.runs):
            for name, (src, kw) in srcs.items():
                rtag = uuid.uuid4().hex[:8]
                env = {**os.environ,
                       "KMEVENTS_KAFKA__BOOTSTRAP": s.kafka.bootstrap, "KMEVENTS_ETCD__ENDPOINT": s.etcd.endpoint,
                       "KMEVENTS_KAFKA__EVENTS_TOPIC": s.kafka.events_topic,
                       "KMEVENTS_KAFKA__SNAPSHOTS_TOPIC": f"ab{rtag}.snapshots",
                       "KMEVENTS_KAFKA__DEADLETTER_TOPIC": f"ab{rtag}.dlq",
                       "KMEVENTS_ETCD__PREFIX": f"/ab{rtag}/kmevents/v1", "KMEVENTS_CLUSTER": s.cluster,
                       "KMEVENTS_AB_SRC": src, "KMEVENTS_AB_WORKER": kw}
                argv = [sys.executable, "-m", "bench.derive_ab", "--child", "--events", str(n)]
                if args.py_spy:  # sampled stacks of the worker and its snapshot children, by process
                    os.makedirs(args.py_spy, exist_ok=True)
                    argv = [os.environ.get("PY_SPY", "py-spy"), "record", "--subprocesses", "--nonblocking",
                            "-r", "50", "-f", "raw", "-o", f"{args.py_spy}/{name}-{run}.txt", "--", *argv]
                if args.profile:
                    os.makedirs(args.profile, exist_ok=True)
                    argv += ["--profile-out", f"{args.profile}/{name}-{run}.prof"]
                load0 = os.getloadavg()[0]
                e0 = _etcd_cpu(etcd_pid) if etcd_pid else float("nan")
                j0 = _etcd_cpu(kafka_pid) if kafka_pid else float("nan")
                p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
                e1 = _etcd_cpu(etcd_pid) if etcd_pid else float("nan")
                j1 = _etcd_cpu(kafka_pid) if kafka_pid else float("nan")
                line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
                asyncio.run(_free_etcd(s, env["KMEVENTS_ETCD__PREFIX"]))
                if p.returncode or not line:
                    print(f"{name} run {run}: failed rc={p.returncode}\n{p.stderr[-3000:]}", flush=True)
                    continue
                r = json.loads(line[-1][7:])
                r.update(etcd_cpu=e1 - e0, kafka_cpu=j1 - j0, load=load0, load_end=os.getloadavg()[0])
                results.append((name, r))
                print(f"{name:>6} run {run}: {r['rate']:8,.0f} events/s  {r['seconds']:6.1f} s wall  "
                      f"worker CPU {r['cpu']:6.1f} s (user {r.get('user', 0):.1f}, sys {r.get('sys', 0):.1f}, GC {r.get('gc', 0):.1f}; "
                      f"+{r.get('children_cpu', 0):.1f} s in children)  etcd CPU {r['etcd_cpu']:5.1f} s  Kafka CPU {r['kafka_cpu']:5.1f} s  "
                      f"{r['transactions']:,} txns, {r['snapshots']} snapshots, {r['deltas']} deltas (index {r.get('stored')})  "
                      f"peak RSS {r.get('rss_mib', 0):.0f} MiB (largest child {r.get('child_rss_mib', 0):.0f})  "
                      f"load {load0:.2f}-{r['load_end']:.2f}", flush=True)
        print(json.dumps(results))


async def _free_etcd(s: Any, prefix: str) -> None:
    """Delete a run's keys, compact and defragment: a full-size derive writes ~2 GiB of revisions,
    and a second one into the same etcd exceeded its 4 GiB quota (``database space exceeded``)."""
    import base64
    import urllib.request

    from kmevents.adapters import etcd as etcd_adapter

    p = f"{prefix}/".encode()
    async with etcd_adapter.client(s.etcd) as c:
        await etcd_adapter.delete_range(c, p, etcd_adapter.prefix_end(p))

    def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(f"{s.etcd.endpoint}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - the bench's own 127.0.0.1 etcd
            return dict(json.loads(resp.read()))

    rev = int(call("/v3/kv/range", {"key": base64.b64encode(b"x").decode()})["header"]["revision"])
    call("/v3/kv/compaction", {"revision": rev, "physical": True})
    call("/v3/maintenance/defragment", {})


def _etcd_pid(s: Any) -> int | None:
    out = subprocess.run(["pgrep", "-f", f"etcd.*{s.etcd.endpoint.rsplit(':', 1)[1]}"], capture_output=True,
                         text=True, check=False).stdout.split()
    return int(out[0]) if out else None


def _kafka_pid(s: Any) -> int | None:
    home = str(s.stack.home)
    out = subprocess.run(["pgrep", "-f", f"java.*{home}"], capture_output=True, text=True, check=False).stdout.split()
    return int(out[0]) if out else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--src", action="append", help="NAME=PATH of a source tree (repeatable)")
    ap.add_argument("--profile", help="directory for a cProfile of each child")
    ap.add_argument("--py-spy", help="directory for py-spy's raw stacks of each child and its snapshot children "
                    "(the py-spy binary: $PY_SPY, else on PATH)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.events, args.profile_out)
    else:
        parent(args)


if __name__ == "__main__":
    main()
