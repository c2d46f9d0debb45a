"""Write the published contract: ``python -m kmevents.contract.schemagen [--check] [--out DIR]``.

Generated from the models (never edited by hand):

- ``schemas/v<N>/envelope.json``  the envelope with ``payload`` as any object (N = 1);
- ``schemas/v<N>/<type>.json``    one JSON Schema per type and schema version;
- the parts of ``schemas/README.md`` between ``<!-- BEGIN GENERATED: x -->`` and
  ``<!-- END GENERATED: x -->`` markers: the type table with dedupe recipes, and
  one example per type taken from ``schemas/examples.json`` with the dedupe key
  and event id that ingest derives for it.

``--check`` writes nothing and exits 1 when a committed file differs from what
the models produce (tests/unit/contract/test_schemas.py runs the same check).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

from kmevents.contract.envelope import Envelope
from kmevents.contract.registry import EVENT_MODELS, SCHEMA_VERSIONS, SPEC_BY_VERSION, SPECS
from kmevents.contract.strict import validate_event

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
ID_BASE: Final = "https://kmevents.invalid/schemas"
_BLOCK: Final = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z-]+) -->\n).*?(<!-- END GENERATED: (?P=name) -->)", re.S
)


def default_dir() -> Path:
    """``schemas/`` of the source checkout this module lives in."""
    return Path(__file__).resolve().parents[2] / "schemas"


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _schema(model: type[Envelope], rel: str, title: str) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = DRAFT
    schema["$id"] = f"{ID_BASE}/{rel}"
    schema["title"] = title
    return _dump(schema)


def schema_files() -> dict[str, str]:
    """``relative path -> content`` of every generated JSON Schema."""
    files = {"v1/envelope.json": _schema(Envelope, "v1/envelope.json", "kmevents event envelope")}
    for (type_, version), model in sorted(EVENT_MODELS.items()):
        rel = f"v{version}/{type_}.json"
        files[rel] = _schema(model, rel, f"{type_} (schema version {version})")
    return files


def _types_table() -> str:
    lines = [
        "| type | current version | raw source types | dedupe key (first template whose fields are all set) |",
        "|---|---|---|---|",
    ]
    for spec in SPECS:
        if spec.version != SCHEMA_VERSIONS[spec.type]:
            continue
        recipes = "<br>".join("`" + t.replace("|", "\\|") + "`" for t in spec.dedupe)  # escaped for tables
        lines.append(f"| `{spec.type}` | {spec.version} | {spec.raw_types} | {recipes} |")
    return "\n".join(lines) + "\n"


def _examples(examples: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for example in examples:
        canonical, _ = validate_event(example)
        spec = SPEC_BY_VERSION[(canonical["type"], canonical["schema_version"])]
        out += [
            f"### `{canonical['type']}`",
            "",
            (spec.payload.__doc__ or "").strip().replace("\n    ", " "),
            "",
            "```json",
            json.dumps(example, indent=2, ensure_ascii=False),
            "```",
            "",
            f"- dedupe_key: `{canonical['dedupe_key']}`",
            f"- event_id: `{canonical['event_id']}`",
            "",
        ]
    return "\n".join(out)


def readme(current: str, examples: list[dict[str, Any]]) -> str:
    """``current`` README text with its generated blocks refreshed."""
    blocks = {"types": _types_table(), "examples": _examples(examples)}

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        return match.group(1) + blocks[name] + match.group(3) if name in blocks else match.group(0)

    return _BLOCK.sub(fill, current)


def expected_files(out: Path) -> dict[Path, str]:
    """Every generated file under ``out`` and its expected content."""
    files = {out / rel: text for rel, text in schema_files().items()}
    readme_path = out / "README.md"
    if readme_path.exists():
        examples = json.loads((out / "examples.json").read_text(encoding="utf-8"))
        files[readme_path] = readme(readme_path.read_text(encoding="utf-8"), examples)
    return files


def drift(out: Path) -> list[Path]:
    """Files under ``out`` that are missing, differ from the models, or are stale leftovers."""
    expected = expected_files(out)
    changed = [p for p, text in expected.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    stale = [p for p in sorted(out.glob("v*/*.json")) if p not in expected]
    return changed + stale


def write(out: Path) -> list[Path]:
    """Write every generated file; remove stale versioned schemas. Returns what changed."""
    changed = drift(out)
    expected = expected_files(out)
    for path in changed:
        if path in expected:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected[path], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kmevents.contract.schemagen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=default_dir(), help="schemas directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="report drift, write nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift(args.out)
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        if stale:
            print("run: python -m kmevents.contract.schemagen", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
