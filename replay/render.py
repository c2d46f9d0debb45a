"""Rendering of replay results: the ``table`` format, and what JSON adds to an entity.

Every entity a JSON output carries has its computed ``condition``
(:func:`kmevents.reducer.condition`: ``Deleted`` for a deleted pod whose last phase
was ``Running``), so ``jq 'select(.condition=="Running")'`` counts what the tables count.

Nothing here holds a whole large state or result in one piece (issue 17): the summary
counts in one pass, and :class:`JsonStream` writes one JSON document member by member
(``write_state_json``: entity by entity; ``kmevents search``: hit by hit), each encoded
on its own with orjson, laid out exactly as ``emit_json`` lays out the whole document
(indent 2, keys sorted, UTF-8)::

    with JsonStream(out) as js:          # {
        js.value("cluster", "prod")      #   "cluster": "prod",
        js.open("events", "[")           #   "events": [
        js.value(None, hit)              #     {...}
        js.close()                       #   ],
        js.value("count", 1)             #   "count": 1
                                         # }
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from kmevents.reducer import ClusterState
from kmevents.reducer.conditions import condition

if TYPE_CHECKING:
    from kmevents.replay.diffing import StateDiff


def table(rows: list[list[Any]], headers: list[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def position_lines(pos: dict[str, Any]) -> list[str]:
    last = pos.get("last_event") or {}
    out = [
        f"cluster {pos['cluster']}  partition {pos['partition']}  target: {pos['target']}",
        f"last event applied: offset {last.get('offset')}  {last.get('type')}",
        f"  occurred_at {last.get('occurred_at')}  recorded_at {last.get('recorded_at')}  "
        f"ingest lag {_lag(last.get('ingest_lag_seconds'))}",
        f"log covered to offset {pos['covered_to_offset']}  chain head {pos['chain_head'] or 'unknown'}",
        f"events applied {pos['events_applied']} (records read {pos['records_scanned']}"
        + (f", started from snapshot at offset {pos['started_from_snapshot']}" if pos.get("started_from_snapshot")
           is not None else ", from the start of the source")
        + (f", {pos['skipped_happened_later']} happened after the time and were skipped"
           if pos.get("skipped_happened_later") else "") + ")",
    ]
    unread = _unread_tail(pos)
    if unread:
        out.insert(4, unread)
    before = before_log_text(pos)
    if before:
        out.append(f"NOTHING KNOWN: {before}")
    if pos.get("incomplete"):
        out.append(f"WARNING: INCOMPLETE STATE: {pos['incomplete']}")
    return out


def _unread_tail(pos: dict[str, Any]) -> str:
    """What a point by occurrence left unread of the log, and why ("" when it read to the end)."""
    last, covered = pos.get("log_last_offset"), pos.get("covered_to_offset")
    if last is None or covered is None or covered >= last:
        return ""
    return (f"  offsets {covered + 1}..{last} not read: the touched-entity index says none of their events "
            "happened by the time")


def before_log_text(pos: dict[str, Any]) -> str | None:
    """One line saying the point lies before the log's first event, and where the log starts
    (None when something was applied)."""
    start = pos.get("before_log_start")
    if not start:
        return None
    where = f"the log of {pos['cluster']}" + (f" ({pos['source']})" if pos.get("source") else "")
    if start.get("offset") is None:
        return f"{where} has no records"
    first = (f"its first record is offset {start['offset']}, occurred_at {start.get('occurred_at')}, "
             f"recorded_at {start.get('recorded_at')}")
    target = str(pos.get("target"))
    if target.startswith("at ") and start.get("earliest_occurred_at"):
        return (f"nothing in {where} had happened {target}: its earliest event occurred at "
                f"{start['earliest_occurred_at']} ({first})")
    return f"{where} starts after the point ({target}): {first}"


def _lag(v: Any) -> str:
    return "n/a" if v is None else f"{v:+.3f}s"


def _encode(value: Any, *, indent: bool = True) -> bytes:
    """``value`` as ``emit_json`` encodes it (indent 2, sorted keys, ``str`` for the unknown;
    the standard library only for what orjson refuses: an integer beyond 64 bits); without
    ``indent``, on one line (what ``get`` keeps of an item until it writes it)."""
    import orjson

    try:
        return orjson.dumps(value, default=str, option=(orjson.OPT_INDENT_2 if indent else 0)
                            | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, indent=2 if indent else None, sort_keys=True, default=str,
                          ensure_ascii=False).encode()


def stdout_writer() -> Callable[[bytes], Any]:
    """A function writing bytes to stdout (its binary buffer; decoded for a text-only stream,
    as ``redirect_stdout`` to a StringIO gives), after what was printed as text."""
    sys.stdout.flush()
    out: BinaryIO | None = getattr(sys.stdout, "buffer", None)
    if out is None:
        return lambda b: sys.stdout.write(b.decode())
    return out.write


class JsonStream:
    """One JSON document written piece by piece (see the module docstring): ``open`` a
    container as a member, ``value`` a member (``key`` None inside an array), ``close`` the
    innermost container. The whole document is ``{...}`` (entered and left by ``with``);
    an empty container is written ``[]``/``{}``. Output is flushed at most every
    ``flush_every`` seconds, so a reader sees hits while a slow scan goes on."""

    def __init__(self, write: Callable[[bytes], Any] | None = None, *,
                 flush: Callable[[], Any] | None = None, flush_every: float = 0.25) -> None:
        if write is None:
            write = stdout_writer()
            flush = flush or getattr(getattr(sys.stdout, "buffer", sys.stdout), "flush", None)
        self._write = write
        self._flush = flush
        self._every = flush_every
        self._last = time.monotonic()
        self._open: list[tuple[bytes, bool]] = []  # (closing bracket, has members) per depth

    def __enter__(self) -> JsonStream:
        self._write(b"{")
        self._open.append((b"}", False))
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            while self._open:
                self.close()
            self._write(b"\n")
        if self._flush is not None:
            self._flush()

    def _member(self, key: str | None) -> None:
        close, seen = self._open[-1]
        self._open[-1] = (close, True)
        pad = b"\n" + b"  " * len(self._open)
        self._write((b"," if seen else b"") + pad + (_encode(str(key)) + b": " if key is not None else b""))

    def open(self, key: str | None, bracket: str) -> None:
        """Start a ``[`` or ``{`` member."""
        self._member(key)
        self._write(bracket.encode())
        self._open.append((b"]" if bracket == "[" else b"}", False))

    def value(self, key: str | None, value: Any) -> None:
        """One member, encoded on its own."""
        self._member(key)
        self._write(_encode(value).replace(b"\n", b"\n" + b"  " * len(self._open)))
        if self._flush is not None and time.monotonic() - self._last >= self._every:
            self._flush()
            self._last = time.monotonic()

    def encoded(self, key: str | None, data: bytes) -> None:
        """One member already encoded as :meth:`value` encodes it (``_encode``: ``get`` keeps its
        items so, not as dicts, until it knows how many there are)."""
        self._member(key)
        self._write(data.replace(b"\n", b"\n" + b"  " * len(self._open)))
        if self._flush is not None and time.monotonic() - self._last >= self._every:
            self._flush()
            self._last = time.monotonic()

    def close(self) -> None:
        close, seen = self._open.pop()
        self._write((b"\n" + b"  " * len(self._open) if seen else b"") + close)


def condition_counts(st: ClusterState, kind: str) -> Counter[str]:
    """How many entities of ``kind`` stand in each condition (one pass, nothing kept; a
    packed kind's values are not decoded: ``ClusterState.conditions``)."""
    return st.condition_counts(kind)


#: the last line of ``kmevents state``'s summary: where the entities themselves are
STATE_HINT = "list entities with `kmevents get KIND` or `kmevents state --format json --kinds pod,task`"


def state_summary(st: ClusterState, kinds: Iterable[str] | None = None) -> str:
    """What ``kmevents state`` prints by default: per kind its count and how many stand in each
    condition (most first), the cluster's facts (leading master, failovers, heartbeat, k8sm's
    leader), and :data:`STATE_HINT`. Never one line per entity: the cost is one pass over
    each kind."""
    rows = []
    for k in kinds or st.kinds:
        by = condition_counts(st, k)
        rows.append([k, f"{st.count(k):,}", ", ".join(f"{c} {n:,}" for c, n in
                                                       sorted(by.items(), key=lambda x: (-x[1], x[0])))])
    cl = st.entity("cluster", st.cluster) or {}
    leader = (cl.get("leader") or {})
    sched = cl.get("scheduler_leader") or {}
    who = leader.get("hostname") or leader.get("id")
    facts = [f"leading master: {who or 'none known'}" + (f" since {cl['since']}" if who and cl.get("since") else "")
             + f"  (failovers {cl.get('failover_count', 0)}, heartbeat "
               f"{(cl.get('heartbeat') or {}).get('status') or 'unknown'})",
             f"k8sm scheduler leader: {sched.get('identity') or 'none known'}"]
    return "\n\n".join([table(rows, ["kind", "count", "by condition"]), "\n".join(facts), STATE_HINT])


def write_state_json(js: JsonStream, pos: dict[str, Any], st: ClusterState, kinds: Iterable[str] | None = None) -> None:
    """``{"position": ..., "state": {kind: {id: value + condition}}}`` into ``js``, entity by
    entity in the order ``emit_json`` would sort them, so ``jq '.state.pod[]'`` reads it as
    before; only ``kinds`` (default: all). What is held at once: one kind's sorted ids."""
    js.value("position", pos)
    js.open("state", "{")
    for k in sorted(kinds or st.kinds):
        js.open(k, "{")
        for i in sorted(st.ids(k)):
            v = st.entity_read(k, i)  # (decoded for the writing, not kept: a kind is not held decoded)
            if v is not None:
                js.value(i, with_condition(v))
        js.close()
    js.close()


def with_condition(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` and its computed ``condition`` (a new dict; the value is not changed)."""
    return {**value, "condition": condition(value)}


def value_text(v: Any) -> str:
    """A value as a person reads it in a diff: JSON (``"Running"``, ``null``, ``{"cpus":1}``),
    never a Python repr (``'Running'``, ``None``)."""
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _more(n: int, what: str) -> str:
    return f"... {n:,} more {what}"


def diff_lines(d: StateDiff, *, limit: int = 50, field_limit: int = 10) -> list[str]:
    """A diff as text: counts per kind, then ``+``/``-``/``~`` entities, at most ``limit`` per kind
    and change and ``field_limit`` fields per entity (0: all), each cut saying how many more."""
    out: list[str] = []
    for kind, c in d.counts().items():
        out.append(f"{kind:14} +{c['added']:<6} -{c['removed']:<6} ~{c['changed']}")

    def cut(items: list[Any], n: int) -> tuple[list[Any], int]:
        return (items, 0) if n <= 0 or len(items) <= n else (items[:n], len(items) - n)

    for sign, table in (("+", d.added), ("-", d.removed)):
        for kind, ents in table.items():
            shown, rest = cut(list(ents), limit)
            out.extend(f"{sign} {kind}/{id}" for id in shown)
            if rest:
                out.append(f"{sign} {_more(rest, f'{kind} entities (--limit 0 lists all)')}")
    for kind, changed in d.changed.items():
        shown_c, rest = cut(list(changed.items()), limit)
        for id, changes in shown_c:
            out.append(f"~ {kind}/{id}")
            fields, more_f = cut(changes, field_limit)
            out.extend(f"    {ch.path}: {value_text(ch.before)} -> {value_text(ch.after)}" for ch in fields)
            if more_f:
                out.append(f"    {_more(more_f, 'fields (--max-fields 0 shows all)')}")
        if rest:
            out.append(f"~ {_more(rest, f'changed {kind} entities (--limit 0 lists all)')}")
    return out
