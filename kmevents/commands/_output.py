"""Tables and ``-o`` formats of the kubectl-like reading commands (get, search, history, clusters).

Cells are written for people: a mapping is ``k=v,k2=v2``, a list ``a,b``, a bool
``true``/``false``, a missing value ``<none>``; never a Python repr. Times go
through :func:`kmevents.timespec.show_time` (the reader's zone, ``--tz``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

NONE = "<none>"


def add_output_flag(p: argparse.ArgumentParser, choices: Sequence[str], *, tz: bool = True) -> None:
    """``-o/--output`` (``--format`` of the same command still works) and ``--tz``."""
    p.add_argument("-o", "--output", choices=tuple(choices), default=None,
                   help=f"output format: {', '.join(choices)} (default {choices[0]})")
    if tz:
        p.add_argument("--tz", metavar="ZONE", help="show times in ZONE (Europe/Paris, local, +02:00; default "
                                                   "KMEVENTS_TZ, else UTC); JSON stays in UTC")


def output_of(args: argparse.Namespace, default: str = "table") -> str:
    """``-o`` when given, else ``--format``, else ``default``."""
    return str(getattr(args, "output", None) or getattr(args, "format", None) or default)


def cell(v: Any, *, limit: int | None = None) -> str:
    """One value as a table cell (see the module docstring); cut to ``limit`` characters with '…'."""
    if v is None or v == "" or v == [] or v == {}:
        text = NONE
    elif isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, float):
        text = f"{v:g}"
    elif isinstance(v, dict):
        text = ",".join(f"{k}={cell(x)}" for k, x in v.items())
    elif isinstance(v, (list, tuple, set, frozenset)):
        items = sorted(v, key=str) if isinstance(v, (set, frozenset)) else v
        text = ",".join(cell(x) for x in items)
    else:
        text = " ".join(str(v).split())  # one line: a message's newlines would break the table
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return text


def table(rows: list[list[Any]], headers: list[str], *, no_headers: bool = False, empty: str = NONE) -> str:
    """Left-aligned columns three spaces apart, headers in capitals, as kubectl prints them;
    a missing value is ``empty``."""
    cells = [[empty if c is None or c == "" else cell(c) for c in r] for r in rows]
    if not no_headers:
        cells.insert(0, [h.upper() for h in headers])
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


class StreamTable:
    """A :func:`table` printed as its rows come: the first ``page`` rows are held to decide
    the column widths (as :func:`table` would for them), printed with the headers, and every
    later row is printed at once in those widths (a longer cell pushes its row's later
    columns right; the columns never move). Memory stays one page whatever the row count.
    ``min_widths`` (header -> characters) widens a column whose longest values may come
    later (the event types a search can find). ``add`` each row, ``finish`` at the end;
    ``rows`` counts them."""

    def __init__(self, headers: list[str], *, page: int = 50, empty: str = NONE,
                 min_widths: dict[str, int] | None = None, write: Any = None) -> None:
        self.headers = [h.upper() for h in headers]
        self._min = [(min_widths or {}).get(h, 0) for h in headers]
        self.page = page
        self.empty = empty
        self.rows = 0
        self._held: list[list[str]] | None = []
        self._widths: list[int] = []
        self._write = write or (lambda line: print(line, flush=True))

    def _cells(self, row: list[Any]) -> list[str]:
        return [self.empty if c is None or c == "" else cell(c) for c in row]

    def _line(self, cells: list[str]) -> str:
        line, start = "", 0
        for i, (c, w) in enumerate(zip(cells, self._widths, strict=True)):
            if i:
                line += " " * max(start - len(line), 3)
            line += c
            start += w + 3
        return line.rstrip()

    def _release(self) -> None:
        held = self._held or []
        self._held = None
        if not held:
            return
        self._widths = [max(self._min[i], *(len(r[i]) for r in [self.headers, *held]))
                        for i in range(len(self.headers))]
        for r in [self.headers, *held]:
            self._write(self._line(r))

    def add(self, row: list[Any]) -> None:
        self.rows += 1
        if self._held is None:
            self._write(self._line(self._cells(row)))
            return
        self._held.append(self._cells(row))
        if len(self._held) >= self.page:
            self._release()

    def finish(self) -> None:
        """Print what is held (fewer rows than a page came); nothing at all for no rows."""
        if self._held is not None:
            self._release()


def emit_yaml(doc: Any) -> None:
    """``-o yaml``: the JSON document as YAML (block style, keys in order)."""
    import orjson
    import yaml

    plain = orjson.loads(orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS))
    sys.stdout.write(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False))


def note(text: str) -> None:
    """A line for the person at the terminal (where the answer came from), on stderr."""
    print(text, file=sys.stderr)
