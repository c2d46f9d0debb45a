"""Kubernetes label selectors: ``app=mysql``, ``tier!=cache``, ``env in (prod,qa)``,
``env notin (dev)``, ``release`` (key exists), ``!canary`` (key absent); comma means AND.

``parse`` returns a :class:`Selector`; ``Selector.matches(labels)`` tests a label map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kmevents.errors import UsageError

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VAL = r"[-A-Za-z0-9_./]*"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VAL})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, absent
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "absent":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # notin


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]
    text: str = ""

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        lab = labels or {}
        return all(r.matches(lab) for r in self.requirements)


def _split(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def parse(text: str) -> Selector:
    reqs: list[Requirement] = []
    for part in _split(text):
        if m := _SET.match(part):
            vals = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), vals))
        elif m := _EQ.match(part):
            reqs.append(Requirement(m.group(1), "notin" if m.group(2) == "!=" else "in", frozenset([m.group(3)])))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m.group(2), "absent" if m.group(1) else "exists"))
        else:
            raise UsageError(f"label selector {text!r}: cannot read {part.strip()!r}",
                             hint="use key=value, key!=value, key in (a,b), key notin (a), key, !key; "
                                  "comma means AND")
    if not reqs:
        raise UsageError("empty label selector", hint="e.g. -l app=mysql")
    return Selector(tuple(reqs), text)


# Field selectors: ``kmevents get --field-selector phase=Running,agent_id!=S1``.

#: kubectl's field names, read as the entity fields they mean here.
FIELD_ALIASES = {"metadata.name": "name", "metadata.namespace": "namespace", "status.phase": "phase",
                 "spec.nodeName": "node_name", "spec.host": "binding_host"}
_FIELD = re.compile(r"^\s*([A-Za-z_][-A-Za-z0-9_.]*)\s*(==|=|!=)\s*(.*?)\s*$")
_MISSING = object()


def field_text(v: object) -> str:
    """A value as a field selector compares it: ``true``/``false``, ``32`` for 32.0, ``""`` for null."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def field_value(value: Mapping[str, object], path: tuple[str, ...]) -> object:
    """The value at a dotted path, or ``MISSING`` (see :func:`has_field`)."""
    cur: object = value
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def has_field(value: Mapping[str, object], path: tuple[str, ...]) -> bool:
    return field_value(value, path) is not _MISSING


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, value: Mapping[str, object]) -> bool:
        got = field_value(value, self.path)
        same = got is not _MISSING and field_text(got) == self.value
        return same if self.equal else not same


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...]
    text: str = ""

    def matches(self, value: Mapping[str, object] | None) -> bool:
        v = value or {}
        return all(r.matches(v) for r in self.requirements)


def parse_fields(text: str) -> FieldSelector:
    """``field=value``, ``field==value``, ``field!=value``, comma means AND; a field is a dotted
    path into the entity's value (``total.cpus=32``) or a kubectl name (``status.phase``)."""
    reqs: list[FieldRequirement] = []
    for part in text.split(","):
        if not part.strip():
            continue
        m = _FIELD.match(part)
        if not m:
            raise UsageError(f"field selector {text!r}: cannot read {part.strip()!r}",
                             hint="use field=value, field==value or field!=value; comma means AND "
                                  "(e.g. phase=Running,agent_id!=S1)")
        name = FIELD_ALIASES.get(m.group(1), m.group(1))
        reqs.append(FieldRequirement(tuple(name.split(".")), m.group(2) != "!=", m.group(3)))
    if not reqs:
        raise UsageError("empty field selector", hint="e.g. --field-selector phase=Running")
    return FieldSelector(tuple(reqs), text)
