"""Mesos JSON values -> contract value shapes (pure functions).

Two dialects are read:

- v1 (operator and scheduler APIs): ids are ``{"value": "..."}``, resources
  are ``[{"name", "type", "scalar": {"value"}, "ranges": {"range": [{"begin",
  "end"}]}, "role" | "reservations"}]``, labels ``{"labels": [{"key",
  "value"}]}``, attributes ``[{"name", "type", "text"|"scalar"|"ranges"|"set"}]``,
  times ``{"nanoseconds": int}``.
- v0 (``/master/state``): ids are plain strings, ``slave_id``; resources a map
  ``{"cpus": 0.5, "mem": 128.0, "ports": "[31000-31005, 32000-32000]"}``,
  labels ``[{"key", "value"}]``, attributes ``{"rack": "r1"}``.

Deliberately *not* read: ``TaskInfo.data``, ``TaskStatus.data``,
``command`` (its environment may hold secrets), ``container``, ``discovery``
and ``MESSAGE`` data — the contract has no field for them or the fold needs
none; what is never mapped can never leak.
"""

from __future__ import annotations

import re
from typing import Any

Obj = dict[str, Any]

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def vid(v: Any) -> str | None:
    """A v1 id ``{"value": "x"}`` (or an already plain string) -> ``"x"``."""
    if isinstance(v, dict):
        v = v.get("value")
    return v if isinstance(v, str) and v else None


def _role(r: Obj) -> str:
    res = r.get("reservations")
    if isinstance(res, list) and res and isinstance(res[-1], dict) and res[-1].get("role"):
        return str(res[-1]["role"])
    role = r.get("role")
    return role if isinstance(role, str) and role else "*"


def resources_v1(items: Any) -> list[Obj]:
    """v1 ``Resource`` list -> contract ``Resource`` list (SET resources are left out)."""
    out: list[Obj] = []
    for r in items or []:
        if not isinstance(r, dict) or not r.get("name"):
            continue
        kind = r.get("type") or ("RANGES" if "ranges" in r else "SCALAR")
        base = {"name": r["name"], "role": _role(r)}
        if kind == "SCALAR" and isinstance(r.get("scalar"), dict):
            out.append({**base, "scalar": float(r["scalar"].get("value", 0.0)), "ranges": None})
        elif kind == "RANGES" and isinstance(r.get("ranges"), dict):
            ranges = [[int(x["begin"]), int(x["end"])] for x in r["ranges"].get("range", [])]
            out.append({**base, "scalar": None, "ranges": ranges})
    return out


def parse_ranges(text: str) -> list[list[int]]:
    """``"[31000-31005, 32000-32000]"`` -> ``[[31000, 31005], [32000, 32000]]``."""
    return [[int(a), int(b)] for a, b in _RANGE.findall(text)]


def resources_v0(amounts: Any, role: str = "*") -> list[Obj]:
    """v0 resource map -> contract ``Resource`` list, sorted by name."""
    out: list[Obj] = []
    if not isinstance(amounts, dict):
        return out
    for name in sorted(amounts):
        value = amounts[name]
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out.append({"name": name, "role": role, "scalar": float(value), "ranges": None})
        elif isinstance(value, str) and value.startswith("["):
            out.append({"name": name, "role": role, "scalar": None, "ranges": parse_ranges(value)})
    return out


def labels_v1(labels: Any) -> dict[str, str]:
    """``{"labels": [{"key", "value"}]}`` (v1) or ``[{"key", "value"}]`` (v0) -> map."""
    if isinstance(labels, dict):
        labels = labels.get("labels")
    out: dict[str, str] = {}
    for item in labels or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = str(item.get("value", ""))
    return out


def attributes_v1(attrs: Any) -> dict[str, str]:
    """v1 ``Attribute`` list -> text map (scalars as numbers, ranges and sets as written by Mesos)."""
    if isinstance(attrs, dict):  # v0: already a map
        return {str(k): _num_text(v) for k, v in attrs.items()}
    out: dict[str, str] = {}
    for a in attrs or []:
        if not isinstance(a, dict) or not a.get("name"):
            continue
        kind = a.get("type")
        if kind == "TEXT" or "text" in a:
            out[a["name"]] = str((a.get("text") or {}).get("value", ""))
        elif kind == "SCALAR" or "scalar" in a:
            out[a["name"]] = _num_text((a.get("scalar") or {}).get("value", 0))
        elif kind == "RANGES" or "ranges" in a:
            rs = (a.get("ranges") or {}).get("range", [])
            out[a["name"]] = "[" + ", ".join(f"{x['begin']}-{x['end']}" for x in rs) + "]"
        elif kind == "SET" or "set" in a:
            out[a["name"]] = "{" + ", ".join(map(str, (a.get("set") or {}).get("item", []))) + "}"
    return out


def _num_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def nanos(t: Any) -> int | None:
    """``TimeInfo`` ``{"nanoseconds": n}`` -> n."""
    if isinstance(t, dict) and isinstance(t.get("nanoseconds"), int):
        return int(t["nanoseconds"])
    return None


def framework_v1(info: Obj) -> Obj:
    """v1 ``FrameworkInfo`` -> contract ``FrameworkInfo``."""
    roles = info.get("roles") or ([info["role"]] if info.get("role") else ["*"])
    return {"id": vid(info.get("id")), "name": str(info.get("name", "")),
            "roles": [str(r) for r in roles], "principal": info.get("principal"),
            "hostname": info.get("hostname"),
            "failover_timeout": float(info.get("failover_timeout") or 0.0)}


def framework_v0(f: Obj) -> Obj:
    """A ``/master/state`` framework -> contract ``FrameworkInfo``."""
    roles = f.get("roles") or ([f["role"]] if f.get("role") else ["*"])
    return {"id": f["id"], "name": str(f.get("name", "")), "roles": [str(r) for r in roles],
            "principal": f.get("principal"), "hostname": f.get("hostname"),
            "failover_timeout": float(f.get("failover_timeout") or 0.0)}


def agent_v1(agent_info: Obj) -> Obj:
    """v1 ``AgentInfo`` -> contract ``AgentInfo``."""
    return {"id": vid(agent_info.get("id")), "hostname": agent_info.get("hostname"),
            "port": int(agent_info.get("port", 5051)),
            "resources": resources_v1(agent_info.get("resources")),
            "attributes": attributes_v1(agent_info.get("attributes"))}


def agent_v0(s: Obj) -> Obj:
    """A ``/master/state`` slave -> contract ``AgentInfo`` (``port`` from ``pid`` when absent)."""
    port = s.get("port")
    if port is None and isinstance(s.get("pid"), str) and ":" in s["pid"]:
        port = int(s["pid"].rsplit(":", 1)[1])
    return {"id": s["id"], "hostname": s.get("hostname"), "port": int(port or 5051),
            "resources": resources_v0(s.get("resources")),
            "attributes": attributes_v1(s.get("attributes") or {})}


def check_status_v1(cs: Any) -> Obj | None:
    if not isinstance(cs, dict) or not cs.get("type"):
        return None
    out: Obj = {"type": cs["type"], "command": None, "http": None, "tcp": None}
    if isinstance(cs.get("command"), dict):
        out["command"] = {"exit_code": cs["command"].get("exit_code")}
    if isinstance(cs.get("http"), dict):
        out["http"] = {"status_code": cs["http"].get("status_code")}
    if isinstance(cs.get("tcp"), dict):
        out["tcp"] = {"succeeded": cs["tcp"].get("succeeded")}
    return out


def status_v1(s: Obj, *, agent_id: str | None = None, executor_id: str | None = None) -> Obj:
    """v1 ``TaskStatus`` -> contract ``TaskStatus`` (``data`` never carried)."""
    ts = s.get("timestamp")
    return {
        "task_id": vid(s.get("task_id")), "state": s.get("state"), "source": s.get("source"),
        "reason": s.get("reason"), "message": s.get("message"), "uuid": s.get("uuid"),
        "healthy": s.get("healthy"), "timestamp": float(ts) if isinstance(ts, (int, float)) else None,
        "agent_id": vid(s.get("agent_id")) or agent_id,
        "executor_id": vid(s.get("executor_id")) or executor_id,
        "labels": labels_v1(s["labels"]) if "labels" in s else None, "data": None,
        "check_status": check_status_v1(s.get("check_status")),
    }


def task_v1(t: Obj) -> Obj:
    """v1 ``Task`` -> contract ``TaskWithState`` (``pod`` null: the uid is only in ``data``)."""
    return {"task_id": vid(t.get("task_id")), "name": str(t.get("name", "")),
            "framework_id": vid(t.get("framework_id")), "agent_id": vid(t.get("agent_id")),
            "executor_id": vid(t.get("executor_id")), "resources": resources_v1(t.get("resources")),
            "labels": labels_v1(t.get("labels")), "pod": None, "data": None,
            "state": t.get("state") or "TASK_STAGING"}


def task_v0(t: Obj) -> Obj:
    """A ``/master/state`` task -> contract ``TaskWithState``."""
    return {"task_id": t["id"], "name": str(t.get("name", "")), "framework_id": t.get("framework_id"),
            "agent_id": t.get("slave_id") or t.get("agent_id"),
            "executor_id": t.get("executor_id") or None,
            "resources": resources_v0(t.get("resources"), t.get("role") or "*"),
            "labels": labels_v1(t.get("labels")), "pod": None, "data": None,
            "state": t.get("state") or "TASK_STAGING"}


def status_v0(s: Obj, task: Obj) -> Obj:
    """One entry of a ``/master/state`` task's ``statuses`` -> contract ``TaskStatus``."""
    ts = s.get("timestamp")
    return {"task_id": task["task_id"], "state": s.get("state"), "source": None, "reason": None,
            "message": None, "uuid": None, "healthy": s.get("healthy"),
            "timestamp": float(ts) if isinstance(ts, (int, float)) else None,
            "agent_id": task["agent_id"], "executor_id": task["executor_id"],
            "labels": labels_v1(s["labels"]) if "labels" in s else None, "data": None,
            "check_status": None}
