"""Text logs carry the ``extra`` fields (issue 14, low: dead letters were logged without offset or reason)."""

from __future__ import annotations

import json
import logging

from kmevents.commands._common import JsonLogFormatter, TextLogFormatter


def _record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("kmevents.processors.worker", logging.WARNING, __file__, 1, "dead letter", (), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_text_lines_end_with_the_extra_fields_as_key_value_pairs() -> None:
    line = TextLogFormatter().format(_record(partition=2, offset=41, error="undecodable: not JSON"))
    assert line.endswith('dead letter partition=2 offset=41 error="undecodable: not JSON"'), line


def test_a_line_without_extras_is_unchanged_and_json_lines_keep_them() -> None:
    assert TextLogFormatter().format(_record()).endswith("kmevents.processors.worker: dead letter")
    doc = json.loads(JsonLogFormatter().format(_record(partition=2, lag={"0": 5})))
    assert doc["partition"] == 2 and doc["lag"] == {"0": 5}
