"""Conformance of the scheduler stream parser to streams shaped as the scheduler API guide
writes them (0.28 to 1.x) and as a 1.7 master sends them (tests/corpus/real/mesos-scheduler/,
each case documented in tests/corpus/real/README.md).

A case holds the framework's stream as RecordIO (one file, as forwarded) and the
``framework_info.json`` it subscribed with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmevents.sources.mesos_scheduler import SchedulerParser
from kmevents.sources.recordio import RecordIODecoder
from tests.unit.sources._helpers import CLUSTER
from tests.unit.sources._mesos_corpus import Clock, Records, cases, check


@pytest.mark.parametrize("case", cases("mesos-scheduler"), ids=lambda p: p.name)
def test_scheduler_stream_case(case: Path) -> None:
    [stream] = sorted(case.glob("*.recordio"))
    info = json.loads((case / "framework_info.json").read_text())

    def start(clock: Clock) -> tuple[Any, Records]:
        parser = SchedulerParser(CLUSTER, stream.stem, framework_info=info, now=clock)
        return parser, ((parser.feed_record, r) for r in RecordIODecoder().feed(stream.read_bytes()))

    check(case, start)
