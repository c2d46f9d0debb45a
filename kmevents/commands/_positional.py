"""Positional arguments that ``--source``'s list swallowed.

``--source`` takes one or more items, so in ``kmevents history --source a.kmarch
task/t1`` argparse hands ``task/t1`` to ``--source`` and leaves the entity empty.
From the first item that is no file, no folder and not ``kafka`` but starts with
a kind (``task/t1``, ``pods``), the items are given back to the positional argument.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def looks_like_kind(item: str) -> bool:
    from kmevents.kinds import lookup

    head = item.split("/", 1)[0]
    return item != "kafka" and not Path(item).exists() and all(lookup(k) is not None for k in head.split(",") if k)


def reclaim(args: argparse.Namespace, dest: str) -> None:
    """Give the items of ``args.source`` from the first that looks like ``KIND[/ID]`` on
    (``--source a.kmarch pods web-1``: ``pods web-1``) to ``args.<dest>``: a list is
    extended in front, a None single value takes the one item. When ``dest`` is a list that
    already starts with a kind, trailing items that are no file, not ``kafka`` and no
    archive name are NAMEs too (``get pods --source a.kmarch web-1``). ``--source`` is never
    emptied this way: a wrong archive name must fail as one, not fall back to Kafka."""
    from kmevents.replay.archive import SUFFIX

    items = list(getattr(args, "source", None) or [])
    current = getattr(args, dest)
    first = next((n for n, i in enumerate(items) if looks_like_kind(i)), None)
    if first is None and isinstance(current, list) and current and looks_like_kind(current[0]):
        first = len(items)
        while first > 0 and _is_name(items[first - 1], SUFFIX):
            first -= 1
    if first is None or first == 0 or first == len(items):
        return
    taken, kept = items[first:], items[:first]
    if isinstance(current, list):
        setattr(args, dest, (current[:1] + taken + current[1:]) if current and looks_like_kind(current[0])
                and not looks_like_kind(taken[0]) else taken + current)
    elif current is None and len(taken) == 1:
        setattr(args, dest, taken[0])
    else:
        return  # nowhere to put them: opening them as archives says what is wrong
    args.source = kept


def _is_name(item: str, suffix: str) -> bool:
    return item != "kafka" and not item.endswith(suffix) and not Path(item).exists()
