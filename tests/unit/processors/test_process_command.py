"""``kmevents process``: its flags leave the worker's defaults where they are defined."""

from __future__ import annotations

import pytest
from kmevents.processors.derive import DELTA_EVERY_EVENTS, SNAPSHOT_EVERY_EVENTS
from kmevents.processors.worker import SNAPSHOT_EVERY_SECONDS

from kmevents.cli import build_parser
from kmevents.commands.process import worker_options
from kmevents.errors import UsageError
from kmevents.store.snapshot_retention import KEEP_RECENT, THIN_EVERY


def _process_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return sub.choices["process"].format_help()


def test_unset_flags_keep_the_worker_defaults_and_given_ones_pass_through() -> None:
    parser = build_parser()
    assert worker_options(parser.parse_args(["process"])) == {}
    args = parser.parse_args(["process", "--snapshot-every", "700", "--snapshot-seconds", "5", "--delta-every", "0"])
    assert worker_options(args) == {"snapshot_every_events": 700, "snapshot_every_seconds": 5.0,
                                    "delta_every_events": 0}
    assert worker_options(parser.parse_args(["process", "--snapshots-in-process"])) == {"snapshots_in_child": False}
    assert worker_options(parser.parse_args(["process", "--deltas-in-child"])) == {"deltas_in_child": True}
    assert worker_options(parser.parse_args(["process", "--full-snapshots-in-child"])) == {
        "full_snapshots_in_child": True}
    assert worker_options(parser.parse_args(["process", "--no-versions"])) == {"versions": False}
    assert worker_options(parser.parse_args(["process", "--prune-snapshots"])) == {
        "snapshot_retention": (KEEP_RECENT, THIN_EVERY)}  # the prune command's defaults
    assert worker_options(parser.parse_args(["process", "--prune-snapshots", "5:2000"])) == {
        "snapshot_retention": (5, 2000)}
    for bad in ("5", "0:10", "a:b", "5:-1"):
        with pytest.raises(UsageError, match="KEEP:EVERY"):
            worker_options(parser.parse_args(["process", "--prune-snapshots", bad]))


def test_the_help_states_the_worker_defaults() -> None:
    text = " ".join(_process_help().split())
    assert f"(default {SNAPSHOT_EVERY_EVENTS:,})" in text
    assert f"(default {SNAPSHOT_EVERY_SECONDS:g})" in text
    assert f"(default {DELTA_EVERY_EVENTS:,};" in text
