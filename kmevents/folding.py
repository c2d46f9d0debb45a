"""The one fold step: a stored log record into a cluster's state (DESIGN.md rules 1, 4, 6, 10).

Every reader of the log — the worker (live and when it restores), replay,
verify and the monitor — folds a record through :meth:`Fold.step`, so they
agree on the state *and* on what a bad record does to it:

1. **link**: the record's key and value bytes, exactly as stored, extend the
   cluster's chain (a record that cannot be decoded still has a hash);
2. **decode** (orjson, then upcasting of older schema versions): anything
   that is not a decodable event is the outcome ``UNDECODABLE``, and the state
   is untouched;
3. **filter** (optional, ``happened_by``: replay's ``--at``): an event whose
   ``occurred_at`` is later (or missing) is the outcome ``LATER``, not applied;
4. **apply** with the reducer. The reducer annotates what it refuses and does
   not raise; should anything escape it anyway, the outcome is ``FAILED``
   and whatever the handler changed before raising stays changed — every
   fold does the same, so the worker's state, a replay's and verify's still
   agree;
5. the annotations it produced are counted by kind.

The outcome is a value, never an exception: the caller decides what it
means. The worker dead-letters ``UNDECODABLE`` and ``FAILED`` records (with
their position and :attr:`Fold.error`), replay and verify count them, the
monitor skips them. Worked example: a v1 ``task.status_updated`` whose
``payload.status`` is ``5`` cannot be upcast: ``step`` returns
``UNDECODABLE`` with ``error = "cannot upcast task.status_updated v1: ..."``,
the chain head still moves, and the next record folds as usual.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from kmevents import chain
from kmevents.contract import DecodeError, decode_fast
from kmevents.reducer import ClusterState, apply

APPLIED: Final = "applied"
LATER: Final = "later"
UNDECODABLE: Final = "undecodable"
FAILED: Final = "fold_failed"
#: outcomes of a record the log holds but the fold could not use
BAD: Final = frozenset({UNDECODABLE, FAILED})

_link = chain.link_bytes


class Fold:
    """One cluster's fold over its records: the state, the chain head, and what happened.

    ``head`` None means the start of the chain is unknown (an archive that
    begins mid-log without a head): records are folded but not linked.
    After each :meth:`step`, ``event`` is the decoded event (None when
    undecodable), ``anns`` the annotations it produced and ``error`` the
    reason of a bad outcome. ``counts`` counts outcomes, ``annotations``
    annotation kinds, over the fold's life.
    """

    __slots__ = ("state", "_head", "partition", "counts", "annotations", "event", "anns", "error")

    def __init__(self, state: ClusterState, head: str | None = chain.GENESIS, *,
                 partition: int | None = None) -> None:
        self.state = state
        #: the chain head as its 32 bytes (hex only when asked: ``head``)
        self._head: bytes | None = None if head is None else bytes.fromhex(head)
        self.partition = partition
        self.counts: Counter[str] = Counter()
        self.annotations: Counter[str] = Counter()
        self.event: dict[str, Any] | None = None
        self.anns: list[dict[str, Any]] = []
        self.error: str | None = None

    @property
    def head(self) -> str | None:
        """The chain head after the last record stepped (hex), None when not linked."""
        h = self._head
        return None if h is None else h.hex()

    @head.setter
    def head(self, value: str | None) -> None:
        self._head = None if value is None else bytes.fromhex(value)

    def link(self, key: bytes | None, value: bytes | None) -> None:
        """Extend the chain by a record without folding it (verify's records before its
        verified point); nothing when the fold is not linked."""
        h = self._head
        if h is not None:
            self._head = _link(h, key, value)

    def step(self, offset: int, key: bytes | None, value: bytes | None, *,
             happened_by: str | None = None) -> str:
        """Fold the record at ``offset``; return its outcome (see the module docstring).

        ``happened_by`` (a canonical time): apply only events whose
        ``occurred_at`` is at or before it; the others are ``LATER``.
        """
        h = self._head
        if h is not None:
            self._head = _link(h, key, value)
        self.anns = []
        self.error = None
        try:
            ev = decode_fast(value or b"")
        except DecodeError as exc:
            return self._bad(UNDECODABLE, None, str(exc))
        except Exception as exc:  # noqa: BLE001 - decode promises DecodeError; never trust it with a record
            return self._bad(UNDECODABLE, None, f"{type(exc).__name__}: {exc}")
        self.event = ev
        if happened_by is not None:
            occ = ev.get("occurred_at")
            if type(occ) is not str or occ > happened_by:
                self.counts[LATER] += 1
                return LATER
        try:
            anns = apply(self.state, ev, partition=self.partition, offset=offset)
        except Exception as exc:  # noqa: BLE001 - one record never stops a fold (DESIGN.md rule 10)
            return self._bad(FAILED, ev, f"{type(exc).__name__}: {exc}")
        if anns:
            self.anns = anns
            counter = self.annotations
            for a in anns:
                counter[a.get("kind", "other") if type(a) is dict else "other"] += 1
        self.counts[APPLIED] += 1
        return APPLIED

    def _bad(self, outcome: str, event: dict[str, Any] | None, error: str) -> str:
        self.event = event
        self.error = error
        self.counts[outcome] += 1
        return outcome


__all__ = ["APPLIED", "BAD", "FAILED", "LATER", "UNDECODABLE", "Fold"]
