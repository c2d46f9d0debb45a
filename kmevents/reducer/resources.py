"""Resource math on small dicts.

A list of catalogue ``Resource`` values is summarised once, when it enters the
state, into ``{role: {name: amount}}``: scalars as given, ranges (``ports``) as
the number of values they hold (``[[31000, 31004]]`` is 5). Amounts follow
Mesos' fixed-point rule for scalars: three decimal digits.

Why the rounding matters. Allocated and offered totals are kept incrementally
(add when a task starts to count, subtract when it stops), and plain float
addition is not associative: 0.1 + 0.2 - 0.1 is 0.20000000000000004, not
0.2, so two orders of the same events would leave different bytes in etcd,
and "allocated == sum over tasks" would fail by 1e-17. Every sum is therefore
snapped to the nearest multiple of 0.001 (``_q``): each stored amount is the
float nearest to k/1000 for an integer k, adding two of them is exact to far
better than 0.0005, so snapping recovers the exact k and the result does not
depend on the order of the operations. Worked example:
``_q(_q(0.1 + 0.2) - 0.1) == 0.2`` and ``_q(_q(0.2 - 0.1) + 0.1) == 0.2``.
Zero amounts are removed from totals, so an empty agent shows ``{}``.
"""

from __future__ import annotations

from typing import Any

import orjson

Summary = dict[str, dict[str, float]]

#: The largest amount one resource may carry (the contract's ``MAX_SCALAR``, 2**53 / 1000):
#: above it the snap to thousandths is no longer exact, and far above it (1e306) the snap
#: overflows to ``inf // 1.0 = nan``, which JSON writes as ``null`` and a restored state
#: cannot add to. A larger amount written raw past ingest is refused as malformed.
MAX_AMOUNT = 2**53 / 1000
#: Range values are Mesos ``uint64``.
MAX_RANGE_VALUE = 2**64 - 1


class Malformed(ValueError):
    """A payload field is missing or has the wrong type (the fold annotates it)."""


def _q(v: float) -> float:
    """Snap to Mesos' fixed point (0.001)."""
    return ((v * 1000.0 + 0.5) // 1.0) / 1000.0


def summarize(resources: Any) -> Summary:
    """``[Resource]`` -> ``{role: {name: amount}}``; raises Malformed on a bad shape."""
    if type(resources) is not list:
        raise Malformed("resources must be a list")
    out: Summary = {}
    for r in resources:
        name = r["name"]
        role = r.get("role") or "*"
        s = r.get("scalar")
        if type(name) is not str or type(role) is not str:
            raise Malformed("resource name and role must be strings")
        if s is None:
            rg = r.get("ranges")
            if not rg:
                continue  # a set-typed resource, or no ranges: nothing to add up
            amt = 0.0
            for b, e in rg:
                if type(b) is not int or type(e) is not int or e < b or b < 0 or e > MAX_RANGE_VALUE:
                    raise Malformed("resource ranges must be [begin, end] integer pairs within 0..2**64-1")
                amt += e - b + 1
        elif (type(s) is float or type(s) is int) and 0 <= s <= MAX_AMOUNT:
            amt = s
        else:
            raise Malformed(f"resource scalar must be a number from 0 to {MAX_AMOUNT:.0f}")
        d = out.get(role)
        if d is None:
            d = out[role] = {}
        v = ((d.get(name, 0.0) + amt) * 1000.0 + 0.5) // 1.0 / 1000.0
        if v:
            d[name] = v
    for role in [role for role, d in out.items() if not d]:
        del out[role]
    return out


#: summaries by the JSON text of their resource list (see ``summarize_shared``)
_SHARED: dict[bytes, Summary] = {}
_SHARED_MAX = 4096
#: types orjson would write like JSON values but summarize treats otherwise: refuse them
_JSON_ONLY = (orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
              | orjson.OPT_PASSTHROUGH_SUBCLASS)


def summarize_shared(resources: Any) -> Summary:
    """``summarize``, remembered by the JSON text of ``resources``: never mutate the result.

    Offers and task launches repeat a few resource shapes (an agent's free
    resources, a pod's requests), and summarising one costs about four times
    as much as writing its JSON text in C (orjson) and looking that up. The
    same text always summarises to the same value, so the result is exactly
    ``summarize``'s; inputs that are not plain JSON values (which orjson would
    refuse or write like something else) and malformed lists are summarised
    every time, so their errors are raised as before. At most ``_SHARED_MAX``
    shapes are kept (then the memo starts again).
    """
    if type(resources) is not list:
        return summarize(resources)
    try:
        key = orjson.dumps(resources, option=_JSON_ONLY)
    except TypeError:
        return summarize(resources)
    summ = _SHARED.get(key)
    if summ is None:
        summ = summarize(resources)
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        # a tight copy of the key: orjson's result keeps its worst-case output buffer
        # allocated (~4 KiB for a ~300-byte list: 3,273 keys held 12.8 MiB at the large
        # profile's quick size, tracemalloc)
        _SHARED[b"".join((key, b""))] = summ
    return summ


def flatten(summary: Summary) -> dict[str, float]:
    """``{role: {name: amount}}`` -> ``{name: amount}`` summed over roles."""
    out: dict[str, float] = {}
    for amts in summary.values():
        for name, v in amts.items():
            out[name] = _q(out.get(name, 0.0) + v)
    return out


def add_flat(dst: dict[str, float], amts: dict[str, float], sign: float) -> None:
    """``dst += sign * amts`` in place, snapped; zeros removed."""
    for name, v in amts.items():
        x = ((dst.get(name, 0.0) + sign * v) * 1000.0 + 0.5) // 1.0 / 1000.0
        if x:
            dst[name] = x
        elif name in dst:
            del dst[name]


def add_summary(flat: dict[str, float], by_role: Summary, summary: Summary, sign: float) -> None:
    """Add ``sign * summary`` to a by-name total and a by-role total, in place."""
    for role, amts in summary.items():
        rd = by_role.get(role)
        if rd is None:
            rd = by_role[role] = {}
        add_flat(flat, amts, sign)
        add_flat(rd, amts, sign)
        if not rd:
            del by_role[role]


def over(used: dict[str, float], total: dict[str, float]) -> list[str]:
    """Names whose ``used`` amount exceeds ``total`` (missing total counts as 0)."""
    return [name for name, v in used.items() if v > total.get(name, 0.0)]
