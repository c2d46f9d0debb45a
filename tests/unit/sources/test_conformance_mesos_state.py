"""Conformance of the master state parser to listings shaped as Mesos 0.19 to 1.7 write them
(tests/corpus/real/mesos-state/, each case documented in tests/corpus/real/README.md): each poll
file of a case is one record, read in name order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kmevents.sources.mesos_state import StateParser
from tests.unit.sources._helpers import CLUSTER
from tests.unit.sources._mesos_corpus import Clock, Records, cases, check, numbered


@pytest.mark.parametrize("case", cases("mesos-state"), ids=lambda p: p.name)
def test_master_state_case(case: Path) -> None:
    def start(clock: Clock) -> tuple[Any, Records]:
        parser = StateParser(CLUSTER, now=clock)
        return parser, ((parser.feed_bytes, path.read_bytes()) for path in numbered(list(case.iterdir())))

    check(case, start)
