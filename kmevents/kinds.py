"""The kinds of entities by every name a reader may give them, as kubectl reads kinds.

Each reducer kind (``kmevents.reducer.KINDS``) has a plural (the API's URL segment:
``pods``, ``replicationcontrollers``), a singular and short names::

    kind           plural                  singular               short
    pod            pods                    pod                    po
    task           tasks                   task
    agent          agents                  agent                  slave(s)
    rc             replicationcontrollers  replicationcontroller  rc
    service        services                service                svc
    namespace      namespaces              namespace              ns
    node           nodes                   node                   no
    offer          offers                  offer
    framework      frameworks              framework              fw
    role           roles                   role
    executor       executors               executor
    inverse_offer  inverseoffers           inverseoffer
    cluster        clusters                cluster                master

``resolve("po")`` is ``KINDS["pod"]``; case, ``-`` and ``_`` are ignored
(``inverse_offers``, ``Pods``). An unknown name is a :class:`UsageError` that
suggests the nearest name and lists the valid ones (``diff --kind pods`` once
answered "no change" because the reducer's name is ``pod``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from kmevents.errors import UsageError


@dataclass(frozen=True)
class Kind:
    """One kind of entity. ``name`` is the reducer's (and the etcd key's) name."""

    name: str
    plural: str
    singular: str
    short: tuple[str, ...] = ()
    #: Kubernetes-namespaced: its id is ``namespace/name`` (a task belongs to its pod's).
    namespaced: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """Every accepted spelling, the plural first."""
        return tuple(dict.fromkeys((self.plural, self.singular, self.name, *self.short)))


_TABLE = (
    Kind("pod", "pods", "pod", ("po",), namespaced=True),
    Kind("task", "tasks", "task"),
    Kind("agent", "agents", "agent", ("slave", "slaves")),
    Kind("rc", "replicationcontrollers", "replicationcontroller", ("rc", "rcs"), namespaced=True),
    Kind("service", "services", "service", ("svc",), namespaced=True),
    Kind("namespace", "namespaces", "namespace", ("ns",)),
    Kind("node", "nodes", "node", ("no",)),
    Kind("offer", "offers", "offer"),
    Kind("framework", "frameworks", "framework", ("fw",)),
    Kind("role", "roles", "role"),
    Kind("executor", "executors", "executor"),
    Kind("inverse_offer", "inverseoffers", "inverseoffer"),
    Kind("cluster", "clusters", "cluster", ("master",)),
)

#: Reducer kind name -> :class:`Kind`, in the order listings show them.
KINDS: dict[str, Kind] = {k.name: k for k in _TABLE}

_BY_NAME: dict[str, Kind] = {}
for _k in _TABLE:
    for _n in _k.names:
        _BY_NAME.setdefault(_n.replace("_", "").replace("-", ""), _k)


def _norm(text: str) -> str:
    return text.strip().lower().replace("_", "").replace("-", "")


def lookup(text: str) -> Kind | None:
    """The kind ``text`` names (any spelling), or None."""
    return _BY_NAME.get(_norm(text))


def valid_names() -> str:
    """``pods (po), tasks, agents, ...``: what a usage error lists."""
    return ", ".join(k.plural + (f" ({', '.join(k.short)})" if k.short else "") for k in _TABLE)


def suggestion(text: str) -> str | None:
    """The nearest accepted name to a wrong one (``pdos`` -> ``pods``), or None."""
    close = difflib.get_close_matches(_norm(text), list(_BY_NAME), n=1, cutoff=0.6)
    return _BY_NAME[close[0]].plural if close else None


def resolve(text: str, *, allowed: tuple[str, ...] | None = None) -> Kind:
    """The kind ``text`` names; a :class:`UsageError` with a suggestion and the valid names
    when it names none (or one outside ``allowed``, reducer names)."""
    k = lookup(text)
    if k is not None and (allowed is None or k.name in allowed):
        return k
    if k is not None:
        ok = ", ".join(KINDS[a].plural for a in allowed or ())
        raise UsageError(f"kind {text!r} ({k.plural}) is not one this command reads", hint=f"one of {ok}")
    near = suggestion(text)
    raise UsageError(f"unknown kind {text!r}" + (f"; did you mean {near!r}?" if near else ""),
                     hint=f"one of {valid_names()}; plural, singular and short names are all accepted")


def resolve_list(text: str, *, allowed: tuple[str, ...] | None = None) -> list[Kind]:
    """``pods,svc`` -> the kinds, in the order given, each once."""
    out: list[Kind] = []
    for part in text.split(","):
        if not part.strip():
            continue
        k = resolve(part, allowed=allowed)
        if k not in out:
            out.append(k)
    if not out:
        raise UsageError("no kind given", hint=f"one of {valid_names()}")
    return out


def every_name() -> list[str]:
    """Every accepted spelling (shell completion offers these)."""
    return sorted({n for k in _TABLE for n in k.names})
