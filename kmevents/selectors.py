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
