"""Small statistics the benchmarks share."""

from __future__ import annotations


def percentile(xs: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``xs`` by nearest rank, no interpolation (p99 of 40 samples is the largest)."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]
