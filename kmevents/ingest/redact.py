"""Redaction before anything is written: the log is kept forever and hash-chained,
so a secret that reached it could never be removed without breaking the chain.

Two passes over each validated event, in this order:

1. **Path rules** (``Rule``, ``DEFAULT_RULES``): a rule names event types
   (``fnmatch`` patterns, ``*`` for all) and a payload path whose segments may
   be ``*`` (any one key or list item) and ``[key.with.dots]`` for keys that
   contain dots. ``drop`` replaces the value found there by ``None``;
   ``drop_key`` removes a mapping entry. The defaults:

   - TaskInfo ``data`` and TaskStatus ``data``: k8sm serialises the whole pod
     (with its environment variables) into them; the fold needs neither.
   - ``kubectl.kubernetes.io/last-applied-configuration`` annotations: a full
     copy of the object as applied, environment values included.

2. **Secret rules** (``redact_rules.SecretRules``) at every place of the payload
   that is free-form (``redact_places``: labels, annotations, agent attributes,
   selectors and volume sources at any depth; ``message``/``reason`` text):
   a value under a key that names a secret (``DB_PASS``, ``example.com/creds``,
   ``secret_token``, CSI ``volumeAttributes.password``) becomes ``MASK``, as
   does the secret part of free text (``PASSWORD=x``, ``"token":"x"``,
   ``Authorization: Bearer x``, ``scheme://user:x@host``, PEM private keys,
   JWTs, AWS access key ids). Keys that only refer to a secret
   (``secretName``, ``passwordSecretRef``) are kept, and identifiers and
   names are never touched. When a payload text was masked, the same rules
   mask the envelope's ``dedupe_key`` (``master.error`` builds it from the
   message), and an ``event_id`` derived from the old key is derived again.

Every path changed is listed, payload-relative, in the envelope's ``redacted``
field (``payload.pod.annotations[example.com/creds]``,
``payload.pod.volumes.0.source.volumeAttributes.password``): the same path
syntax as rules, keys with dots or brackets in brackets, list items by index.
So an operator sees what was removed, and the fold can tell "absent" from
"redacted".

Allow rules exempt paths from both passes: ``Redactor(allow=[Rule("pod.upserted",
"pod.annotations[vault.hashicorp.com/agent-inject-token]")])``; a ``*`` segment
matches any key or index. The secret rules take extra key patterns, value
patterns and allowed keys from settings (``Redactor.from_settings``).

Cost: most events hold nothing to redact, and finding that out is a few
dictionary look-ups (key and text decisions are cached in ``SecretRules``);
the regular expressions run only on events that may hold a secret.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from kmevents.contract import derive_event_id
from kmevents.ingest.redact_places import FREE, TEXT, Places, places_for
from kmevents.ingest.redact_rules import LEAKY, MASK, PLAIN, SecretRules
from kmevents.settings import RedactSettings

__all__ = ["DEFAULT_RULES", "MASK", "Redactor", "Rule", "SecretRules"]


@dataclass(frozen=True)
class Rule:
    """Remove what ``path`` selects in events whose type matches ``types``."""

    types: str
    path: str
    action: Literal["drop", "drop_key"] = "drop"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("task.launched", "task.data"),
    Rule("task.added", "task.data"),
    Rule("task.status_updated", "status.data"),
    Rule("pod.upserted", "pod.annotations[kubectl.kubernetes.io/last-applied-configuration]", "drop_key"),
)

#: A path as segments: mapping keys (``str``) and list indices (``int``).
Path = tuple[str | int, ...]


@dataclass
class _Plan:
    """What the redactor does to one event type and schema version (cached)."""

    rules: list[tuple[Rule, list[str], str | None]]
    places: Places | int
    probes: list[Probe]
    allow: list[list[str]]


class Redactor:
    """Applies path rules and secret rules (minus allow rules) to a validated event dict, in place."""

    def __init__(self, rules: Iterable[Rule] = DEFAULT_RULES, allow: Iterable[Rule] = (), *,
                 secrets: SecretRules | None = None) -> None:
        self.rules = tuple(rules)
        self.allow = tuple(allow)
        self.secrets = secrets if secrets is not None else SecretRules()
        self._plans: dict[tuple[str, Any], _Plan] = {}

    @classmethod
    def from_settings(cls, settings: RedactSettings) -> Redactor:
        """The default rules plus what ``KMEVENTS_REDACT__*`` adds."""
        return cls(secrets=SecretRules(extra_key_patterns=settings.extra_key_patterns,
                                       extra_value_patterns=settings.extra_value_patterns,
                                       allow_keys=settings.allow_keys))

    def plan_for(self, type_: str, version: Any) -> _Plan:
        """The path rules that apply to ``type_`` (not exempted), each with its parsed path and,
        when the path has no ``*``, its rendered form (it then matches one place at most);
        the type's secret places; its allow paths."""
        key = (type_, version)
        found = self._plans.get(key)
        if found is None:
            allow = [_split(a.path) for a in self.allow if fnmatch.fnmatchcase(type_, a.types)]
            rules = []
            for rule in self.rules:
                segs = _split(rule.path)
                if fnmatch.fnmatchcase(type_, rule.types) and segs not in allow:
                    rules.append((rule, segs, None if "*" in segs else render(segs)))
            places = places_for(type_, version)
            found = self._plans[key] = _Plan(rules, places, probes_of(places), allow)
        return found

    def __call__(self, event: dict[str, Any]) -> list[str]:
        """Redact ``event`` in place; return the payload paths changed (also added to ``redacted``)."""
        type_ = event.get("type")
        payload = event.get("payload")
        if not isinstance(type_, str) or not isinstance(payload, dict):
            return []
        version = event.get("schema_version")
        plan = self.plan_for(type_, version if type(version) is int else None)
        removed: list[str] = []
        for rule, segs, rendered in plan.rules:
            matches = _walk(payload, segs) if rendered is None else _find(payload, segs, rendered)
            if matches:
                removed.extend(_ACTIONS[rule.action](matches))
        if plan.probes and _may_hold(payload, plan.probes, self.secrets):
            found = _Masker(self.secrets, plan.allow)
            found.visit_places(payload, plan.places, ())
            if found.removed:
                removed.extend(found.removed)
                if found.texts:
                    self._mask_dedupe_key(event)
        if removed:
            marks = list(event.get("redacted") or [])
            for p in removed:
                full = f"payload.{p}" if p[0] != "[" else f"payload{p}"
                if full not in marks:
                    marks.append(full)
            event["redacted"] = marks
        return removed

    def _mask_dedupe_key(self, event: dict[str, Any]) -> None:
        """A dedupe key built from a masked text would still hold the secret (and an event id
        derived from it, its hash): mask it too, and derive a derived id again."""
        key = event.get("dedupe_key")
        if type(key) is not str or not self.secrets.may_hold(key):
            return
        masked = self.secrets.mask_text(key)
        if masked == key:
            return
        event["dedupe_key"] = masked
        cluster = event.get("cluster")
        if type(cluster) is str and event.get("event_id") == derive_event_id(cluster, key):
            event["event_id"] = derive_event_id(cluster, masked)


# ---- the secret rules' pass ----


#: One place to look at: its path (``*`` for every list item), whether the path has a ``*``, its kind.
Probe = tuple[tuple[str, ...], bool, int]


def probes_of(places: Places | int, prefix: tuple[str, ...] = ()) -> list[Probe]:
    """The place tree flattened into paths: the pre-check looks each up directly."""
    if isinstance(places, int):
        return [(prefix, "*" in prefix, places)]
    out: list[Probe] = []
    for seg, sub in places.items():
        out.extend(probes_of(sub, (*prefix, seg)))
    return out


def _may_hold(payload: dict[str, Any], probes: list[Probe], rules: SecretRules) -> bool:
    """Could any place of ``payload`` hold a secret? Cached decisions only, no regular
    expression unless a text or key is new."""
    texts = rules._texts  # noqa: SLF001 - the hot path inlines the cache look-ups
    for segs, star, kind in probes:
        nodes: list[Any] | tuple[Any]
        if star:
            nodes = _select(payload, segs)
        else:
            node: Any = payload
            for seg in segs:
                node = node.get(seg) if type(node) is dict else None
                if node is None:
                    break
            if node is None:
                continue
            nodes = (node,)
        for node in nodes:
            if type(node) is str:
                hit = texts.get(node)
                if hit or (hit is None and rules.may_hold(node)):
                    return True
            elif kind == FREE and _free_may_hold(node, rules):
                return True
    return False


def _free_may_hold(node: Any, rules: SecretRules) -> bool:
    """``_may_hold`` for a free-form value: every key and string at any depth (iterative:
    a volume source may nest deeply)."""
    kinds = rules._key_kinds  # noqa: SLF001
    texts = rules._texts  # noqa: SLF001
    stack = [node]
    while stack:
        cur = stack.pop()
        if type(cur) is dict:
            for k in cur:
                kind = kinds.get(k)
                if kind is None and type(k) is str:
                    kind = rules.key_kind(k)
                if kind:
                    return True
            values: Any = cur.values()
        elif type(cur) is list:
            values = cur
        else:
            continue
        for v in values:
            if type(v) is str:
                hit = texts.get(v)
                if hit or (hit is None and rules.may_hold(v)):
                    return True
            elif type(v) is dict or type(v) is list:
                stack.append(v)
    return False


def _select(node: Any, segs: tuple[str, ...]) -> list[Any]:
    """The values at ``segs`` under ``node`` (``*``: every item of a list)."""
    level = [node]
    for seg in segs:
        nxt: list[Any] = []
        for cur in level:
            if seg == "*":
                if type(cur) is list:
                    nxt.extend(cur)
            elif type(cur) is dict:
                child = cur.get(seg)
                if child is not None:
                    nxt.append(child)
        if not nxt:
            return nxt
        level = nxt
    return level


class _Masker:
    """Applies the secret rules to an event's places, recording what it changed."""

    def __init__(self, rules: SecretRules, allow: list[list[str]]) -> None:
        self.rules = rules
        self.allow = allow
        self.removed: list[str] = []
        self.texts = False  # was a free text masked (the dedupe key may quote it)?

    def allowed(self, path: Path) -> bool:
        return any(len(a) == len(path) and all(s == "*" or s == str(p) for s, p in zip(a, path, strict=True))
                   for a in self.allow)

    def record(self, path: Path) -> bool:
        if self.allow and self.allowed(path):
            return False
        self.removed.append(render(path))
        return True

    def visit_places(self, node: Any, place: Places | int, path: Path) -> None:
        stack: list[tuple[Any, Places | int, Path]] = [(node, place, path)]
        while stack:
            cur, pl, at = stack.pop()
            if type(pl) is dict:
                for seg, sub in pl.items():
                    if seg == "*":
                        if type(cur) is list:
                            stack.extend((item, sub, (*at, i)) for i, item in enumerate(cur))
                    elif type(cur) is dict and cur.get(seg) is not None:
                        if sub == TEXT or (sub == FREE and type(cur[seg]) is str):
                            self.text(cur, seg, (*at, seg))
                        elif sub == FREE:
                            self.free(cur[seg], (*at, seg))
                        else:
                            stack.append((cur[seg], sub, (*at, seg)))
            elif pl == FREE:
                self.free(cur, at)

    def text(self, container: Any, key: str | int, path: Path) -> None:
        value = container[key]
        if type(value) is str and self.rules.may_hold(value):
            masked = self.rules.mask_text(value)
            if masked != value and self.record(path):
                container[key] = masked
                self.texts = True

    def free(self, node: Any, path: Path) -> None:
        """Key and text rules over a free-form value at any depth (iterative)."""
        rules = self.rules
        stack: list[tuple[Any, Path]] = [(node, path)]
        while stack:
            cur, at = stack.pop()
            if type(cur) is dict:
                for k in list(cur):
                    kind = rules.key_kind(k) if type(k) is str else PLAIN
                    v = cur[k]
                    if kind == LEAKY:
                        if self.record((*at, rules.mask_text(k))):
                            del cur[k]
                    elif kind:
                        if v is not None and type(v) is not bool and v != "" and v != MASK and self.record((*at, k)):
                            cur[k] = MASK
                    elif type(v) is str:
                        self.text(cur, k, (*at, k))
                    elif type(v) is dict or type(v) is list:
                        stack.append((v, (*at, k)))
            elif type(cur) is list:
                for i, v in enumerate(cur):
                    if type(v) is str:
                        self.text(cur, i, (*at, i))
                    elif type(v) is dict or type(v) is list:
                        stack.append((v, (*at, i)))


# ---- paths ----

_SEGMENT = re.compile(r"\[([^\]]+)\]|([^.\[]+)")
_NEEDS_BRACKETS = re.compile(r"[.\[\]]|^$")


def _split(path: str) -> list[str]:
    """``"pod.annotations[kubectl.kubernetes.io/x]"`` -> ``["pod", "annotations", "kubectl.kubernetes.io/x"]``.

    Brackets quote a key that contains dots (Kubernetes annotation keys do).
    """
    return [m.group(1) or m.group(2) for m in _SEGMENT.finditer(path)]


def render(path: Iterable[str | int]) -> str:
    """``("pod", "annotations", "example.com/creds")`` -> ``"pod.annotations[example.com/creds]"``;
    list indices as ``.0``. The inverse of ``_split`` for keys without brackets."""
    out: list[str] = []
    for seg in path:
        text = str(seg)
        if type(seg) is str and _NEEDS_BRACKETS.search(text):
            out.append(f"[{text}]")
        else:
            out.append(f".{text}" if out else text)
    return "".join(out)


# ---- the path rules' pass ----


def _find(node: Any, segs: list[str], rendered: str) -> tuple[tuple[Any, Any, str], ...]:
    """``_walk`` for a path without ``*``: a few dictionary look-ups and no path strings,
    since most rules match nothing in most events."""
    last = len(segs) - 1
    for depth, key in enumerate(segs):
        if type(node) is not dict or key not in node:
            return ()
        if depth == last:
            return ((node, key, rendered),)
        node = node[key]
    return ()


def _walk(node: Any, segs: list[str]) -> list[tuple[Any, Any, str]]:
    """(container, key, rendered path) for every match of ``segs`` under ``node``.

    ``*`` matches exactly one level: any key of a mapping or any item of a list.
    """
    level: list[tuple[Any, Path]] = [(node, ())]
    last = len(segs) - 1
    out: list[tuple[Any, Any, str]] = []
    for depth, head in enumerate(segs):
        nxt: list[tuple[Any, Path]] = []
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
                if depth == last:
                    out.append((cur, k, render((*path, k))))
                else:
                    nxt.append((cur[k], (*path, k)))
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


#: What each action does to the places its rule's path selects; returns the paths changed.
_ACTIONS: Final = {"drop": _drop, "drop_key": _drop_key}
