"""Dedupe keys and derived event ids: recipes any producer can reproduce.

**dedupe_key** — per type, from the templates in ``kmevents.contract.registry``
applied to the *canonical* event (``occurred_at`` already canonical). Example
for a status update with a uuid::

    task.status_updated|<agent_id>|<task_id>|<uuid>

**event_id** (when the producer sends none)::

    event_id = lowercase_hex(sha256(utf8(cluster + "\\n" + dedupe_key)))[:32]

Worked example: cluster ``prod-1``, dedupe key ``offer.rescinded|O-42`` ->
``sha256(b"prod-1\\noffer.rescinded|O-42")`` -> first 32 hex characters.
The same occurrence delivered twice (Mesos retries status updates until they
are acknowledged) gets the same key and the same id, so the duplicate is
recognisable wherever it turns up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from kmevents.contract.registry import SPEC_BY_VERSION

_FIELD: Final = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")

#: A compiled template: literal text and paths, alternating (``str`` or ``tuple`` of keys).
Compiled = tuple[str | tuple[str, ...], ...]


def compile_template(template: str) -> Compiled:
    """Split ``"a|{payload.x}|b"`` into ``("a|", ("payload", "x"), "|b")``."""
    parts: list[str | tuple[str, ...]] = []
    pos = 0
    for match in _FIELD.finditer(template):
        if match.start() > pos:
            parts.append(template[pos : match.start()])
        parts.append(tuple(match.group(1).split(".")))
        pos = match.end()
    if pos < len(template):
        parts.append(template[pos:])
    return tuple(parts)


_COMPILED: Final[dict[tuple[str, int], tuple[Compiled, ...]]] = {
    key: tuple(compile_template(t) for t in spec.dedupe) for key, spec in SPEC_BY_VERSION.items()
}


def render_value(value: Any) -> str:
    """Text of one value in a dedupe key (floats: six decimals; bools: true/false)."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return f"{value:.6f}"
    if value is None:
        return ""
    return str(value)


def _lookup(event: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = event
    for key in path:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


def _render(event: Mapping[str, Any], compiled: Compiled, *, allow_null: bool) -> str | None:
    out: list[str] = []
    for part in compiled:
        if type(part) is str:
            out.append(part)
            continue
        value = _lookup(event, part)  # type: ignore[arg-type]
        if value is None and not allow_null:
            return None
        out.append(render_value(value))
    return "".join(out)


def dedupe_key(event: Mapping[str, Any]) -> str:
    """The dedupe key of a canonical event (its type and schema version pick the recipe)."""
    templates = _COMPILED[(event["type"], event["schema_version"])]
    for compiled in templates[:-1]:
        key = _render(event, compiled, allow_null=False)
        if key is not None:
            return key
    return _render(event, templates[-1], allow_null=True) or ""


def derive_event_id(cluster: str, key: str) -> str:
    """``sha256(cluster + "\\n" + dedupe_key)``, lowercase hex, first 32 characters."""
    return hashlib.sha256(f"{cluster}\n{key}".encode()).hexdigest()[:32]
