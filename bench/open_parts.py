"""What the open block's parts cost the worker's live batches (issue 17), etcd left out.

    python -m bench.open_parts [--events 300000] [--scale 0.2] [--from 150000] [--count 40000]
                               [--batch 50]

A worker that keeps up writes, with each batch, what the batch added to the open block's
versions record (``Capture.part``, processors/derive.py ``_open_part``): one more encode
and zstd of each event's versions, and its bytes in the batch's etcd transaction. This
folds the large-profile log (``bench.large_log``) with two derivers in one process, both
with versions on: up to ``--from`` in batches of 5,000 (not timed), then ``--count``
records in live-sized batches (``--batch``; at 270 events/s and the worker's 200 ms fetch
~50), one deriver told the batches are live and the other not, the batches alternated
between them. Their transactions are counted, not sent (no etcd): the figure is the
worker's own CPU a record, live against not, and the bytes the parts add to etcd's writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, cast

from bench.large_log import large_log


@dataclass
class _Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def _deriver() -> Any:
    from kmevents.processors.derive import PartitionDeriver

    from kmevents.settings import Settings

    class Counted(PartitionDeriver):  # type: ignore[misc]
        """Its transactions counted (bytes by kind of key), not sent."""

        def __init__(self) -> None:
            super().__init__(Settings(), cast(Any, None), 0, worker_id="bench", snapshot_every_events=10**9,
                             delta_every_events=0)
            self.bytes = {"parts": 0, "other": 0}
            self.parts = 0
            self.txns = 0

        async def _guarded_txn(self, ops: dict[bytes, bytes | None], *, moves_checkpoint: Any) -> tuple[bool, int]:
            self.txns += 1
            for k, v in ops.items():
                if b"/_versions_open/" in k and v is not None:
                    self.bytes["parts"] += len(k) + len(v)
                    self.parts += 1
                else:
                    self.bytes["other"] += len(k) + (len(v) if v is not None else 0)
            return True, self.txns

    return Counted()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--from", dest="start", type=int, default=150_000)
    ap.add_argument("--count", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args()
    log = large_log(args.events, scale=args.scale)
    recs = []
    with open(log.path, "rb") as f:
        for i, line in enumerate(f):
            if i >= args.start + args.count:
                break
            recs.append(_Rec(0, i, b"large", line.rstrip(b"\n")))
    live, idle = _deriver(), _deriver()
    cpu = {"live": 0.0, "not_live": 0.0}

    async def run() -> None:
        for d in (live, idle):
            for i in range(0, args.start, 5000):
                await d.process(recs[i:min(i + 5000, args.start)])
            d.bytes = {"parts": 0, "other": 0}
        for i in range(args.start, args.start + args.count, args.batch):
            chunk = recs[i:i + args.batch]
            for name, d, is_live in (("live", live, True), ("not_live", idle, False)) if (i // args.batch) % 2 \
                    else (("not_live", idle, False), ("live", live, True)):
                t = time.process_time()
                await d.process(chunk, live=is_live)
                cpu[name] += time.process_time() - t

    asyncio.run(run())
    n = args.count
    out = {
        "records": n, "batch": args.batch,
        "us_per_record": {k: round(v / n * 1e6, 2) for k, v in cpu.items()},
        "ratio": round(cpu["live"] / cpu["not_live"], 3),
        "parts": live.parts,
        "part_bytes_per_record": round(live.bytes["parts"] / n, 1),
        "other_bytes_per_record": round(live.bytes["other"] / n, 1),
        "etcd_bytes_ratio": round((live.bytes["parts"] + live.bytes["other"]) / max(1, idle.bytes["other"]), 3),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
