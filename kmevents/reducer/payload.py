"""Readers of payload fields for the handlers: each checks a field's JSON type and raises
:class:`Malformed` (the fold annotates the event ``malformed``, nothing changed) when it is
wrong. Shared by handlers_mesos and handlers_k8s."""

from __future__ import annotations

from typing import Any

from kmevents.reducer.resources import Malformed


def req_str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise Malformed(f"{what} must be a string")
    return v


def opt_str(v: Any, what: str) -> str | None:
    if v is not None and type(v) is not str:
        raise Malformed(f"{what} must be a string or null")
    return v


def opt_dict(v: Any, what: str) -> dict[str, Any] | None:
    if v is not None and type(v) is not dict:
        raise Malformed(f"{what} must be an object or null")
    return v


def str_map(v: Any, what: str) -> dict[str, str]:
    if v is None:
        return {}
    if type(v) is not dict:
        raise Malformed(f"{what} must be an object")
    return v
