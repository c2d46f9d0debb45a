"""The dedupe window as digests (kmevents/reducer/dedupe.py, issue 17): memory, bytes, speed.

    python -m bench.run dedupe [--quick]
    KMEVENTS_BENCH_BEFORE=/path/to/a/checkout python -m bench.run dedupe   # and the fold before

Keys: the dedupe keys (``event_id`` when none) of 200,000 events of ``kmevents simulate
--profile large --scale 0.2`` after its attach (the churn a window holds at steady state;
the ids are as long as at full scale). Measured in one process:

- memory: tracemalloc of one set of the 200,000 keys (the strings counted: a loaded
  snapshot's window owns them) against one set of their digests;
- the digest: ns a key for BLAKE2b-64 (the one used) and the other stdlib hashes cut to
  8 bytes;
- encodings of the set in a snapshot: bytes, zstd-1 bytes, dump (sort included) and load
  (``orjson.loads`` and the set built) for the keys as text (reducer 4), the digests as a
  JSON list of ints, and as base64 of packed big-endian uint64s (reducer 5);
- the fold: ``apply`` over 200,000 events of the default simulator profile (``--quick``:
  50,000) against the same-run baseline of bench_fold (``orjson.loads`` + one dict
  update), CPU time, best of 3. With ``KMEVENTS_BENCH_BEFORE`` the same child runs on that
  checkout's kmevents too, alternating, so the ratio of ratios is the change's cost.
"""

from __future__ import annotations

import gc
import hashlib
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
N_KEYS = 200_000

_FOLD_CHILD = """
import sys, orjson
sys.path.insert(0, {root!r})  # that checkout's kmevents and bench_fold
from kmevents.simulate import generate
from kmevents.reducer import REDUCER_VERSION
from bench.bench_fold import _baseline, _fold
lines = [orjson.dumps(e) for e in generate("bench-1", 7, {n})]
fold = base = float("inf")
for _ in range(3):
    base = min(base, _baseline(lines))
    el, st, _ = _fold(lines)
    fold = min(fold, el)
snap = st.to_snapshot()
print(orjson.dumps({{"version": REDUCER_VERSION, "fold": {n} / fold, "base": {n} / base, "snapshot": len(snap),
                    "keys": len(st._seen_new) + len(st._seen_old)}}).decode())
"""


def keys(n: int = N_KEYS) -> list[str]:
    from kmevents.simulate import generate

    out: list[str] = []
    skip = 100_000
    for i, e in enumerate(generate("large", 1, skip + n, profile="large", scale=0.2)):
        if i >= skip:
            out.append(e.get("dedupe_key") or e.get("event_id"))
    return out


def _best(f: Callable[[], Any], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def _traced(build: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    kept = build()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return size


def _hashes() -> dict[str, Callable[[str], int]]:
    b2, md5, sha1, sha256 = hashlib.blake2b, hashlib.md5, hashlib.sha1, hashlib.sha256
    return {
        "md5": lambda k: int.from_bytes(md5(k.encode()).digest()[:8], "big"),
        "sha1": lambda k: int.from_bytes(sha1(k.encode()).digest()[:8], "big"),
        "sha256": lambda k: int.from_bytes(sha256(k.encode()).digest()[:8], "big"),
        "blake2b (int.from_bytes)": lambda k: int.from_bytes(b2(k.encode(), digest_size=8).digest(), "big"),
    }


def _fold_rates(n: int, root: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _FOLD_CHILD.format(root=str(root), n=n)],
                         check=True, capture_output=True, text=True, cwd=str(root)).stdout
    return orjson.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool) -> list[dict[str, Any]]:
    import zstandard

    from kmevents.reducer.dedupe import decode, digest, encode

    ks = keys()
    mean_len = sum(map(len, ks)) / len(ks)
    raw_keys = orjson.dumps(ks)
    str_bytes = _traced(lambda: set(orjson.loads(raw_keys)))
    digests = {digest(k) for k in ks}
    dig_bytes = _traced(lambda: {digest(k) for k in ks})
    n = len(digests)
    results: list[dict[str, Any]] = [{
        "name": f"dedupe window in memory ({n:,} distinct keys)",
        "figure": round(dig_bytes / 2**20, 2), "unit": "MiB",
        "baseline": "a set of the keys themselves (reducer 4), strings counted",
        "baseline_figure": round(str_bytes / 2**20, 2), "ratio": round(dig_bytes / str_bytes, 3),
        "aim": None, "met": None,
        "notes": f"keys {mean_len:.0f} characters on average; {dig_bytes / n:.0f} B a digest "
                 f"against {str_bytes / n:.0f} B a key",
    }]
    used = _best(lambda: [digest(k) for k in ks]) / len(ks)
    others = {name: _best(lambda f=f: [f(k) for k in ks]) / len(ks) for name, f in _hashes().items()}
    results.append({
        "name": "digest of a key (blake2b, 8 bytes)", "figure": round(used * 1e9), "unit": "ns",
        "baseline": "the fastest other stdlib hash cut to 8 bytes",
        "baseline_figure": round(min(others.values()) * 1e9), "ratio": round(used / min(others.values()), 3),
        "aim": None, "met": None,
        "notes": ", ".join(f"{k} {v * 1e9:.0f} ns" for k, v in others.items()),
    })

    zc = zstandard.ZstdCompressor(level=1)
    forms: dict[str, tuple[Callable[[], bytes], Callable[[bytes], Any]]] = {
        "keys as text (reducer 4)": (lambda: orjson.dumps(sorted(ks)), lambda b: set(orjson.loads(b))),
        "digests as JSON ints": (lambda: orjson.dumps(sorted(digests)), lambda b: set(orjson.loads(b))),
        "digests as base64 uint64 (reducer 5)": (lambda: orjson.dumps(encode(digests)),
                                                 lambda b: decode(orjson.loads(b), 5)),
    }
    sizes = {}
    for name, (dump, load) in forms.items():
        data = dump()
        assert len(load(data)) in (n, len(set(ks)))
        sizes[name] = len(data)
        results.append({
            "name": f"window in a snapshot: {name}", "figure": round(len(data) / 2**20, 2), "unit": "MiB",
            "baseline": "", "baseline_figure": None, "ratio": None, "aim": None, "met": None,
            "notes": f"zstd-1 {len(zc.compress(data)) / 2**20:.2f} MiB; dump {_best(dump) * 1e3:.0f} ms, "
                     f"load {_best(lambda d=data, f=load: f(d)) * 1e3:.0f} ms",
        })

    n_fold = 50_000 if quick else 200_000
    before = os.environ.get("KMEVENTS_BENCH_BEFORE")
    now, then = [], []
    for _ in range(2):
        now.append(_fold_rates(n_fold, ROOT))
        if before:
            then.append(_fold_rates(n_fold, Path(before)))
    best_now = max(now, key=lambda r: r["fold"] / r["base"])
    notes = f"default simulator profile, CPU time, best of 3 rounds in each of {len(now)} children"
    if then:
        best_then = max(then, key=lambda r: r["fold"] / r["base"])
        notes += (f"; before (reducer {best_then['version']}, same run): {best_then['fold']:,.0f} events/s, "
                  f"ratio {best_then['fold'] / best_then['base']:.3f}")
    snap_then = f"; before: {then[0]['snapshot'] / 2**20:.2f} MiB" if then else ""
    results.append({
        "name": f"snapshot after the fold ({best_now['keys']:,} keys in the window)",
        "figure": round(best_now["snapshot"] / 2**20, 2), "unit": "MiB", "baseline": "", "baseline_figure": None,
        "ratio": None, "aim": None, "met": None, "notes": f"canonical bytes, uncompressed{snap_then}",
    })
    results.append({
        "name": f"fold ({n_fold:,} events, reducer {best_now['version']})", "figure": round(best_now["fold"]),
        "unit": "events/s", "baseline": "orjson.loads + one dict update per event, same bytes",
        "baseline_figure": round(best_now["base"]), "ratio": round(best_now["fold"] / best_now["base"], 3),
        "aim": None, "met": None, "notes": notes,
    })
    return results


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
