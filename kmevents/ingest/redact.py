"""Redaction before anything is written: the log is kept forever and hash-chained,
so a secret that reached it could never be removed without breaking the chain.

A rule names event types (``fnmatch`` patterns, ``*`` for all) and a payload
path whose segments may be ``*`` (any one key or list item) and
``[key.with.dots]`` for keys that contain dots. The value found there
is replaced by ``None`` (``drop``) or, for mapping keys, the entry is removed
(``drop_key``); every path touched is listed in the envelope's ``redacted``
field, so a reader knows what was removed and the fold can tell "absent" from
"redacted".

Defaults (``DEFAULT_RULES``):

- TaskInfo ``data`` and TaskStatus ``data``: k8sm serialises the whole pod
  (with its environment variables) into them; the fold needs neither.
- ``kubectl.kubernetes.io/last-applied-configuration`` annotations: a full copy
  of the object as applied, environment values included.
- label and annotation entries whose key names a secret (``password``,
  ``secret``, ``token``, ``credential``, ``apikey``, ``private-key``), and the
  same in volume sources (flexVolume ``options`` can carry credentials inline;
  a ``secretRef`` is dropped).
- Kubernetes Event messages are kept (they are what operators read), but a
  message that quotes an environment assignment of a secret-looking name
  (``PASSWORD=...``) has the value masked.

Rules are configurable: ``Redactor(rules=DEFAULT_RULES + [...], allow=[...])``;
an ``allow`` rule exempts a (type, path) from the deny rules.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

SECRET_KEY = re.compile(r"(?i)(passw(or)?d|secret|token|credential|api[-_]?key|private[-_]?key)")
SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([A-Z0-9_]*(?:PASSW(?:OR)?D|SECRET|TOKEN|CREDENTIAL|API_?KEY|PRIVATE_?KEY)[A-Z0-9_]*)=(\S+)"
)
MASK = "[redacted]"

_SECRET_KEY_CACHE: dict[str, bool] = {}


def _secret_key(key: Any) -> bool:
    """Does a label/annotation key name a secret? Cached: the same keys recur in every event."""
    hit = _SECRET_KEY_CACHE.get(key)
    if hit is None:
        hit = bool(SECRET_KEY.search(str(key)))
        if len(_SECRET_KEY_CACHE) < 100_000:
            _SECRET_KEY_CACHE[key] = hit
    return hit


@dataclass(frozen=True)
class Rule:
    """Remove what ``path`` selects in events whose type matches ``types``."""

    types: str
    path: str
    action: Literal["drop", "drop_key", "mask_secret_keys", "mask_assignments"] = "drop"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("task.launched", "task.data"),
    Rule("task.added", "task.data"),
    Rule("task.status_updated", "status.data"),
    Rule("pod.upserted", "pod.annotations[kubectl.kubernetes.io/last-applied-configuration]", "drop_key"),
    Rule("task.launched", "task.labels", "mask_secret_keys"),
    Rule("task.added", "task.labels", "mask_secret_keys"),
    Rule("task.status_updated", "status.labels", "mask_secret_keys"),
    Rule("pod.upserted", "pod.labels", "mask_secret_keys"),
    Rule("pod.upserted", "pod.annotations", "mask_secret_keys"),
    Rule("namespace.upserted", "namespace.labels", "mask_secret_keys"),
    Rule("pod.upserted", "pod.volumes.*.source", "mask_secret_keys"),
    Rule("pod.upserted", "pod.volumes.*.source.options", "mask_secret_keys"),
    Rule("pod.upserted", "pod.volumes.*.source.secretRef", "drop"),
    Rule("k8s_event.recorded", "message", "mask_assignments"),
    Rule("task.status_updated", "status.message", "mask_assignments"),
)


class Redactor:
    """Applies deny rules (minus allow rules) to an event dict, in place, before validation."""

    def __init__(self, rules: Iterable[Rule] = DEFAULT_RULES, allow: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self.allow = tuple(allow)
        self._by_type: dict[str, list[tuple[Rule, list[str], str | None]]] = {}

    def rules_for(self, type_: str) -> list[tuple[Rule, list[str], str | None]]:
        """The deny rules that apply to ``type_`` (not exempted), cached, each with its parsed
        path and, when the path has no ``*``, its dotted form (it then matches one place at most)."""
        found = self._by_type.get(type_)
        if found is None:
            found = []
            for rule in self.rules:
                if fnmatch.fnmatchcase(type_, rule.types) and not any(
                    fnmatch.fnmatchcase(type_, a.types) and a.path == rule.path for a in self.allow
                ):
                    segs = _split(rule.path)
                    found.append((rule, segs, None if "*" in segs else ".".join(segs)))
            self._by_type[type_] = found
        return found

    def __call__(self, event: dict[str, Any]) -> list[str]:
        """Redact ``event`` in place; return the payload paths removed (also added to ``redacted``)."""
        type_ = event.get("type")
        payload = event.get("payload")
        if not isinstance(type_, str) or not isinstance(payload, dict):
            return []
        removed: list[str] = []
        for rule, segs, dotted in self.rules_for(type_):
            matches = _walk(payload, segs, "") if dotted is None else _find(payload, segs, dotted)
            if matches:
                removed.extend(_ACTIONS[rule.action](matches))
        if removed:
            marks = list(event.get("redacted") or [])
            for p in removed:
                full = f"payload.{p}"
                if full not in marks:
                    marks.append(full)
            event["redacted"] = marks
        return removed


_SEGMENT = re.compile(r"\[([^\]]+)\]|([^.\[]+)")


def _split(path: str) -> list[str]:
    """``"pod.annotations[kubectl.kubernetes.io/x]"`` -> ``["pod", "annotations", "kubectl.kubernetes.io/x"]``.

    Brackets quote a key that contains dots (Kubernetes annotation keys do).
    """
    return [m.group(1) or m.group(2) for m in _SEGMENT.finditer(path)]


def _find(node: Any, segs: list[str], dotted: str) -> tuple[tuple[Any, Any, str], ...]:
    """``_walk`` for a path without ``*``: a few dictionary look-ups and no path strings,
    since most rules match nothing in most events."""
    last = len(segs) - 1
    for depth, key in enumerate(segs):
        if type(node) is not dict or key not in node:
            return ()
        if depth == last:
            return ((node, key, dotted),)
        node = node[key]
    return ()


def _walk(node: Any, segs: list[str], prefix: str) -> list[tuple[Any, Any, str]]:
    """(container, key, dotted path) for every match of ``segs`` under ``node``.

    ``*`` matches exactly one level: any key of a mapping or any item of a list.
    Iterative and allocation-light: this runs for every ingested event.
    """
    level: list[tuple[Any, str]] = [(node, prefix)]
    last = len(segs) - 1
    out: list[tuple[Any, Any, str]] = []
    for depth, head in enumerate(segs):
        nxt: list[tuple[Any, str]] = []
        for cur, path in level:
            if type(cur) is dict:
                if head == "*":
                    keys: Any = list(cur)
                elif head in cur:
                    keys = (head,)
                else:
                    continue
            elif type(cur) is list and head == "*":
                keys = range(len(cur))
            else:
                continue
            for k in keys:
                sub = f"{path}.{k}" if path else str(k)  # noqa: B023 - paths are short
                if depth == last:
                    out.append((cur, k, sub))
                else:
                    nxt.append((cur[k], sub))
        if not nxt and depth < last:
            return out
        level = nxt
    return out


def _drop(matches: Iterable[tuple[Any, Any, str]]) -> list[str]:
    removed: list[str] = []
    for container, key, path in matches:
        if container[key] is not None:
            container[key] = None
            removed.append(path)
    return removed


def _drop_key(matches: Iterable[tuple[Any, Any, str]]) -> list[str]:
    removed: list[str] = []
    for container, key, path in matches:
        del container[key]
        removed.append(path)
    return removed


def _mask_secret_keys(matches: Iterable[tuple[Any, Any, str]]) -> list[str]:
    removed: list[str] = []
    seen: set[int] = set()
    for container, key, path in matches:
        value = container[key]
        if not isinstance(value, dict) or id(value) in seen:
            continue
        seen.add(id(value))
        for k in list(value):
            hit = _SECRET_KEY_CACHE.get(k)  # inlined _secret_key: labels recur in every event
            if (hit if hit is not None else _secret_key(k)) and value[k] != MASK:
                value[k] = MASK
                removed.append(f"{path}.{k}")
    return removed


def _mask_assignments(matches: Iterable[tuple[Any, Any, str]]) -> list[str]:
    removed: list[str] = []
    for container, key, path in matches:
        value = container[key]
        if isinstance(value, str) and "=" in value:  # no "=", no assignment to mask
            masked = SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}={MASK}", value)
            if masked != value:
                container[key] = masked
                removed.append(path)
    return removed


#: What each action does to the places its rule's path selects; returns the paths changed.
_ACTIONS: Final = {
    "drop": _drop, "drop_key": _drop_key, "mask_secret_keys": _mask_secret_keys, "mask_assignments": _mask_assignments,
}
