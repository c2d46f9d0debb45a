"""The published schemas match the models, and the README's examples are valid."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings

from kmevents.contract import EVENT_TYPES, SCHEMA_VERSIONS, validate_event
from kmevents.contract.schemagen import default_dir, drift, main, schema_files
from tests.strategies import events

SCHEMAS = default_dir()
EXAMPLES = json.loads((SCHEMAS / "examples.json").read_text(encoding="utf-8"))


def _validator(type_: str, version: int) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"v{version}" / f"{type_}.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schemas_and_readme_match_the_models() -> None:
    stale = drift(SCHEMAS)
    assert not stale, f"run `python -m kmevents.contract.schemagen`; out of date: {stale}"


def test_drift_is_detected(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    target = tmp_path / "v1" / "offer.rescinded.json"
    target.write_text(target.read_text().replace("offer_id", "offerId"))
    (tmp_path / "v1" / "leftover.type.json").write_text("{}")
    assert set(drift(tmp_path)) == {target, tmp_path / "v1" / "leftover.type.json"}
    assert main(["--out", str(tmp_path), "--check"]) == 1


def test_one_schema_per_type_and_version_plus_the_envelope() -> None:
    files = schema_files()
    assert "v1/envelope.json" in files
    for type_ in EVENT_TYPES:
        assert f"v{SCHEMA_VERSIONS[type_]}/{type_}.json" in files
    assert "v1/task.status_updated.json" in files


def test_examples_cover_every_type_once() -> None:
    assert sorted(e["type"] for e in EXAMPLES) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["type"] for e in EXAMPLES])
def test_example_is_valid_for_ingest_and_for_its_json_schema(example: dict) -> None:
    canonical, warnings = validate_event(example)
    assert warnings == []
    validator = _validator(example["type"], example["schema_version"])
    assert not list(validator.iter_errors(example))
    assert not list(validator.iter_errors(canonical))


def test_readme_shows_every_example_with_its_derived_ids() -> None:
    text = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    for example in EXAMPLES:
        canonical, _ = validate_event(example)
        assert f"### `{example['type']}`" in text
        assert f"- event_id: `{canonical['event_id']}`" in text


@settings(max_examples=100, deadline=None)
@given(events())
def test_canonical_events_satisfy_their_json_schema(event: dict) -> None:
    validator = _validator(event["type"], event["schema_version"])
    assert not list(validator.iter_errors(event))


def test_json_schema_rejects_what_ingest_rejects() -> None:
    bad = json.loads(json.dumps(EXAMPLES[0]))
    bad["recorded_at"] = "2015-07-08T15:03:22.000000Z"
    bad["cluster"] = "Prod"
    assert len(list(_validator(bad["type"], bad["schema_version"]).iter_errors(bad))) == 2
