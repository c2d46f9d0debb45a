"""The entity kinds people type: one vocabulary for every command that takes a KIND.

The reducer names each kind in the singular (``pod``, ``rc``, ``inverse_offer``:
:data:`kmevents.reducer.KINDS`). People type what kubectl taught them, so each kind is
also accepted as its plural, its API path (``replicationcontrollers``,
``inverseoffers``), with ``-`` for ``_``, in any case, and by kubectl's short names
where one exists (``po``, ``rc``, ``svc``, ``ns``, ``no``)::

    resolve("pods") == resolve("po") == resolve("Pod") == "pod"
    resolve("replicationcontrollers") == "rc"
    resolve("pdos")   # UnknownKind: unknown kind 'pdos' (did you mean pods?); kinds: agent, ...

An unknown kind is an error listing the valid ones, never an empty answer.
"""

from __future__ import annotations

import difflib

from kmevents.errors import UsageError
from kmevents.reducer import KINDS

#: the plural of each kind, as the API's paths spell it (``/v1/clusters/C/pods``)
PLURALS: dict[str, str] = {
    "cluster": "clusters", "framework": "frameworks", "agent": "agents", "offer": "offers",
    "inverse_offer": "inverseoffers", "task": "tasks", "executor": "executors", "pod": "pods",
    "namespace": "namespaces", "node": "nodes", "rc": "replicationcontrollers", "service": "services",
    "role": "roles",
}

#: further spellings: kubectl's short names and the long form of an abbreviated kind
ALIASES: dict[str, str] = {
    "po": "pod", "svc": "service", "ns": "namespace", "no": "node",
    "replicationcontroller": "rc", "rcs": "rc", "inverseoffer": "inverse_offer", "slave": "agent",
    "slaves": "agent",
}


def _spellings() -> dict[str, str]:
    out = {k: k for k in KINDS}
    out.update({p: k for k, p in PLURALS.items()})
    out.update({k.replace("_", "") + "s": k for k in KINDS})  # inverse_offer -> inverseoffers
    out.update({k + "s": k for k in KINDS if "_" in k})  # inverse_offers
    out.update(ALIASES)
    return out


#: every accepted spelling (lower case, ``_`` for ``-``) -> the kind
SPELLINGS: dict[str, str] = _spellings()


class UnknownKind(UsageError):
    """A KIND no spelling of any kind matches; the message lists the valid ones."""

    def __init__(self, text: str) -> None:
        near = difflib.get_close_matches(_norm(text), list(SPELLINGS), n=1, cutoff=0.7)
        guess = f" (did you mean {near[0]}?)" if near else ""
        super().__init__(f"unknown kind {text!r}{guess}; kinds: {', '.join(sorted(KINDS))}",
                         hint="plurals, the API's paths and kubectl's short names (po, rc, svc, ns, no) work too")
        self.text = text


def _norm(text: str) -> str:
    return text.strip().lower().replace("-", "_")


def resolve(text: str) -> str:
    """The kind ``text`` names (see the module docstring); :class:`UnknownKind` otherwise."""
    kind = SPELLINGS.get(_norm(text))
    if kind is None:
        raise UnknownKind(text)
    return kind


def resolve_all(texts: list[str] | None) -> list[str] | None:
    """``resolve`` each of ``texts`` (a repeatable flag; also comma-separated), in order, without
    repeats; None for None."""
    if texts is None:
        return None
    out: list[str] = []
    for t in texts:
        for part in t.split(","):
            if part.strip():
                k = resolve(part)
                if k not in out:
                    out.append(k)
    return out


def plural(kind: str) -> str:
    """The plural (the API's path) of a kind: ``pod`` -> ``pods``, ``rc`` -> ``replicationcontrollers``."""
    return PLURALS[kind]
