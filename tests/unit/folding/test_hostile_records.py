"""Every record of the hostile corpus folds to the outcome the corpus names, and the fold goes on."""

from __future__ import annotations

import pytest

from kmevents import chain
from kmevents.folding import APPLIED, UNDECODABLE, Fold
from kmevents.reducer import ClusterState
from tests.hostile import raw_records

RECORDS = raw_records("c1")


@pytest.mark.parametrize("rec", RECORDS, ids=[r.name for r in RECORDS])
def test_a_hostile_record_folds_to_its_named_outcome(rec) -> None:
    cluster = "c1" if rec.outcome != "unkeyed" else "_unkeyed"
    fold = Fold(ClusterState.empty(cluster), chain.GENESIS, partition=0)
    outcome = fold.step(0, rec.key, rec.value)
    if rec.outcome == "undecodable":
        assert outcome == UNDECODABLE, fold.error
    else:
        assert outcome == APPLIED, fold.error
        kinds = [a["kind"] for a in fold.anns]
        if rec.outcome in ("malformed", "unknown_type", "foreign_cluster"):
            assert rec.outcome in kinds, kinds
        elif rec.outcome == "unkeyed":
            assert "foreign_cluster" in kinds, kinds  # the '_unkeyed' fold is not the event's cluster
        else:
            assert "malformed" not in kinds, kinds
    assert fold.head != chain.GENESIS


def test_the_corpus_covers_every_outcome() -> None:
    assert {r.outcome for r in RECORDS} == {"undecodable", "malformed", "unknown_type", "foreign_cluster",
                                            "applied", "unkeyed"}
