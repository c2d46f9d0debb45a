"""Conformance of the operator stream parser to subscriptions shaped as Mesos 1.1 to 1.7 send
them (tests/corpus/real/mesos-operator/, each case documented in tests/corpus/real/README.md).

A case holds one RecordIO file per subscription, in name order, each read as a new stream
(as the live client does on each connection); a ``<stem>.get_master.json`` beside one is the
``GET_MASTER`` answer the client reads before subscribing, and counts as a record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.recordio import RecordIODecoder
from tests.unit.sources._helpers import CLUSTER
from tests.unit.sources._mesos_corpus import Clock, Records, cases, check


def subscriptions(case: Path, parser: OperatorParser) -> Records:
    for path in sorted(case.glob("*.recordio")):
        parser.new_stream(path.stem)
        master = path.with_name(path.stem + ".get_master.json")
        if master.exists():
            yield parser.master, json.loads(master.read_text())["get_master"]["master_info"]
        for record in RecordIODecoder().feed(path.read_bytes()):
            yield parser.feed_record, record


@pytest.mark.parametrize("case", cases("mesos-operator"), ids=lambda p: p.name)
def test_operator_stream_case(case: Path) -> None:
    def start(clock: Clock) -> tuple[Any, Records]:
        parser = OperatorParser(CLUSTER, now=clock)
        return parser, subscriptions(case, parser)

    check(case, start)
