"""Objects frozen out of the cyclic collector (``gc.freeze``), and whether any are, for the process.

Freezing moves every tracked object alive into a permanent generation that no collection walks;
``gc.unfreeze`` moves them all back to the oldest generation. Both are O(1). Knowing whether anything
is frozen is not: ``gc.get_freeze_count()`` walks the whole permanent generation to count it (43 ms
for 3M objects on the bench machine). kmevents asked it at the end of every ``no_gc`` block (a
snapshot's or a delta's parse, a delta's apply): with a loaded state frozen, each of those paid a
walk of that state. So kmevents freezes and thaws through this module, which keeps the answer.

Who freezes: a command that loads a state once (``store.snapshots.load_snapshot``'s ``freeze``),
and the API's collector policy, which freezes what each read keeps (replay/collector.py).
A ``gc.freeze`` made elsewhere is unknown here: :func:`to_oldest` would then thaw it (what
kmevents did before it froze at all), never freeze more than asked.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze() -> None:
    """Freeze every object alive now (``gc.freeze``)."""
    global _frozen
    gc.freeze()
    _frozen = True


def unfreeze() -> None:
    """Thaw every frozen object into the oldest generation (``gc.unfreeze``)."""
    global _frozen
    gc.unfreeze()
    _frozen = False


def any_frozen() -> bool:
    """Whether kmevents froze objects that are not thawed since (O(1))."""
    return _frozen


def to_oldest() -> None:
    """Every object alive now out of the young generations, in O(1): into the oldest generation
    (``gc.freeze`` then ``gc.unfreeze``), or, while objects are frozen, frozen with them (an
    unfreeze would thaw those too). The young collections then do not walk what was just built."""
    gc.freeze()
    if not _frozen:
        gc.unfreeze()


__all__ = ["any_frozen", "freeze", "to_oldest", "unfreeze"]
