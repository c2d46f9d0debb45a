"""Mesos JSON values -> contract value shapes (pure functions).

Two dialects are read:

- v1 (operator and scheduler APIs): ids are ``{"value": "..."}``, resources
  are ``[{"name", "type", "scalar": {"value"}, "ranges": {"range": [{"begin",
  "end"}]}, "role" | "reservations"}]``, labels ``{"labels": [{"key",
  "value"}]}``, attributes ``[{"name", "type", "text"|"scalar"|"ranges"|"set"}]``,
  times ``{"nanoseconds": int}``.
- v0 (``/master/state``): ids are plain strings, ``slave_id``; resources a map
  ``{"cpus": 0.5, "mem": 128.0, "ports": "[31000-31005, 32000-32000]"}``,
  labels ``[{"key", "value"}]``, attributes ``{"rack": "r1"}``. An agent's
  reservations come per role, in the shape of its Mesos version (``agent_resources_v0``):
  0.19-0.22 only the total ``resources`` map (everything ``*``); 0.23 and later
  ``reserved_resources`` ``{role: map}`` beside ``unreserved_resources``; the
  ``/slaves`` endpoint and some later captures ``reserved_resources_full``
  ``{role: [v1 Resource]}`` beside ``unreserved_resources_full``.

Ranges are read in every form seen in captures and client libraries:
``{"range": [{"begin", "end"}]}`` (Mesos' own JSON), ``begin``/``end`` as
strings (protobuf's JSON mapping of uint64), a range list of ``"a-b"`` strings,
or one ``"[a-b, c-d]"`` string (the v0 form). Anything else raises
``ValueError``: the parser quarantines the record, it never guesses.

Deliberately *not* read: ``TaskInfo.data``, ``TaskStatus.data``,
``command`` (its environment may hold secrets), ``container``, ``discovery``
and ``MESSAGE`` data — the contract has no field for them or the fold needs
none; what is never mapped can never leak.
"""

from __future__ import annotations

import re
from typing import Any

Obj = dict[str, Any]
TaskKey = tuple[str, str]
"""A task's identity: ``(framework_id, task_id)`` (a Mesos task id is unique only within its
framework; ``""`` when the source does not name the framework)."""

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


def obj(v: Any) -> Obj:
    """``v`` when it is a JSON object, else an empty one (an absent optional message)."""
    return v if isinstance(v, dict) else {}


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


def ranges_of(value: Any) -> list[list[int]]:
    """Any JSON form of Mesos ``Value.Ranges`` -> ``[[begin, end], ...]`` (see the module docstring)."""
    if isinstance(value, str):
        return parse_ranges(value)
    if isinstance(value, dict):
        value = value.get("range", [])
    if isinstance(value, str):
        return parse_ranges(value)
    if not isinstance(value, list):
        raise ValueError(f"ranges must be a list, an object with 'range' or a string, not {value!r:.60}")
    out: list[list[int]] = []
    for item in value:
        if isinstance(item, str):
            out.extend(parse_ranges(item))
        elif isinstance(item, dict) and "begin" in item and "end" in item:
            out.append([int(item["begin"]), int(item["end"])])
        else:
            raise ValueError(f"a range must be {{'begin', 'end'}} or 'a-b', not {item!r:.60}")
    return out


def _ranges_text(ranges: list[list[int]]) -> str:
    return "[" + ", ".join(f"{a}-{b}" for a, b in ranges) + "]"


def resources_v1(items: Any) -> list[Obj]:
    """v1 ``Resource`` list -> contract ``Resource`` list (SET and TEXT resources are left out)."""
    out: list[Obj] = []
    for r in items or []:
        if not isinstance(r, dict) or not r.get("name"):
            continue
        kind = r.get("type") or ("RANGES" if "ranges" in r else "SCALAR")
        base = {"name": str(r["name"]), "role": _role(r)}
        if kind == "SCALAR" and isinstance(r.get("scalar"), dict):
            out.append({**base, "scalar": float(r["scalar"].get("value", 0.0)), "ranges": None})
        elif kind == "RANGES" and r.get("ranges") is not None:
            out.append({**base, "scalar": None, "ranges": ranges_of(r["ranges"])})
    return out


def parse_ranges(text: str) -> list[list[int]]:
    """``"[31000-31005, 32000-32000]"`` -> ``[[31000, 31005], [32000, 32000]]``; a lone
    ``"31000"`` is ``[[31000, 31000]]``; anything else that is not empty raises ``ValueError``."""
    found = [[int(a), int(b)] for a, b in _RANGE.findall(text)]
    if found:
        return found
    bare = text.strip().strip("[]{}").strip()
    if not bare:
        return []
    if bare.isdigit():
        return [[int(bare), int(bare)]]
    raise ValueError(f"not a range list: {text!r:.60}")


def resources_v0(amounts: Any, role: str = "*", *, keep_zero: bool = True) -> list[Obj]:
    """v0 resource map -> contract ``Resource`` list, sorted by name.

    Mesos writes ``cpus``, ``gpus``, ``mem`` and ``disk`` even when zero;
    ``keep_zero=False`` leaves those out (a role's reservation lists only
    what is reserved). Set resources (``"{a, b}"``) have no contract shape.
    """
    out: list[Obj] = []
    if not isinstance(amounts, dict):
        return out
    for name in sorted(amounts):
        value = amounts[name]
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if value or keep_zero:
                out.append({"name": name, "role": role, "scalar": float(value), "ranges": None})
        elif isinstance(value, str) and value.startswith("["):
            ranges = parse_ranges(value)
            if ranges or keep_zero:
                out.append({"name": name, "role": role, "scalar": None, "ranges": ranges})
    return out


def agent_resources_v0(s: Obj) -> list[Obj]:
    """A ``/master/state`` slave's total resources, each with the role it is reserved for.

    ``reserved_resources_full`` (v1 Resources by role) is the most exact
    form; else ``reserved_resources`` ``{role: map}`` (0.23+) with
    ``unreserved_resources`` as ``*``; else (0.19-0.22) ``resources`` is all ``*``.
    """
    full = s.get("reserved_resources_full")
    if isinstance(full, dict) and isinstance(s.get("unreserved_resources_full"), list):
        out = resources_v1(s["unreserved_resources_full"])
        for role in sorted(full):
            out += [dict(r, role=r["role"] if r["role"] != "*" else role) for r in resources_v1(full[role])]
        return out
    reserved = s.get("reserved_resources")
    if isinstance(reserved, dict) and "unreserved_resources" in s:
        out = resources_v0(s.get("unreserved_resources"))
        for role in sorted(reserved):
            if isinstance(reserved[role], dict):
                out += resources_v0(reserved[role], role, keep_zero=False)
        return out
    return resources_v0(s.get("resources"))


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
            out[a["name"]] = _ranges_text(ranges_of(a.get("ranges") or []))
        elif kind == "SET" or "set" in a:
            items = a.get("set") or {}
            items = items.get("item", []) if isinstance(items, dict) else items
            out[a["name"]] = "{" + ", ".join(map(str, items)) + "}"
    return out


def _num_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def nanos(t: Any) -> int | None:
    """``TimeInfo`` ``{"nanoseconds": n}`` -> n (``n`` may be a string: protobuf's JSON of int64)."""
    if isinstance(t, dict):
        n = t.get("nanoseconds")
        if isinstance(n, int) and not isinstance(n, bool):
            return n
        if isinstance(n, str) and n.lstrip("-").isdigit():
            return int(n)
    return None


def framework_v1(info: Obj) -> Obj:
    """v1 ``FrameworkInfo`` -> contract ``FrameworkInfo``."""
    roles = info.get("roles") or ([info["role"]] if info.get("role") else ["*"])
    return {"id": require(info.get("id"), "framework_info.id"), "name": str(info.get("name", "")),
            "roles": [str(r) for r in roles], "principal": info.get("principal"),
            "hostname": info.get("hostname"),
            "failover_timeout": float(info.get("failover_timeout") or 0.0)}


def framework_v0(f: Obj) -> Obj:
    """A ``/master/state`` framework -> contract ``FrameworkInfo``."""
    roles = f.get("roles") or ([f["role"]] if f.get("role") else ["*"])
    return {"id": require(f.get("id"), "framework.id"), "name": str(f.get("name", "")),
            "roles": [str(r) for r in roles],
            "principal": f.get("principal"), "hostname": f.get("hostname"),
            "failover_timeout": float(f.get("failover_timeout") or 0.0)}


def agent_v1(agent_info: Any) -> Obj:
    """v1 ``AgentInfo`` -> contract ``AgentInfo``."""
    if not isinstance(agent_info, dict):
        raise ValueError(f"agent_info must be an object, not {agent_info!r:.60}")
    return {"id": require(agent_info.get("id"), "agent_info.id"),
            "hostname": text(agent_info.get("hostname"), "agent_info.hostname"),
            "port": int(agent_info.get("port", 5051)),
            "resources": resources_v1(agent_info.get("resources")),
            "attributes": attributes_v1(agent_info.get("attributes"))}


def agent_v0(s: Obj) -> Obj:
    """A ``/master/state`` slave -> contract ``AgentInfo`` (``port`` from ``pid`` when absent)."""
    port = s.get("port")
    if port is None:
        port = pid_address(s.get("pid"))[1]
    return {"id": require(s.get("id"), "slave.id"), "hostname": text(s.get("hostname"), "slave.hostname"),
            "port": int(port or 5051),
            "resources": agent_resources_v0(s),
            "attributes": attributes_v1(s.get("attributes") or {})}


#: The last second a canonical time can name (9999-12-31T23:59:59Z).
MAX_EPOCH_SECONDS = 253402300799.0


def epoch_seconds(v: Any, what: str) -> float | None:
    """A Mesos float time (seconds since the epoch): None when absent or not a number, else the
    number, which must name a time between 1970 and 9999 (``ValueError`` otherwise)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if not 0 <= v <= MAX_EPOCH_SECONDS:
        raise ValueError(f"{what} {v!r} is not a time (seconds since the epoch)")
    return float(v)


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
        "task_id": require(s.get("task_id"), "status.task_id"), "state": text(s.get("state"), "status.state"),
        "source": s.get("source"),
        "reason": s.get("reason"), "message": s.get("message"), "uuid": s.get("uuid"),
        "healthy": s.get("healthy"), "timestamp": epoch_seconds(ts, "status.timestamp"),
        "agent_id": vid(s.get("agent_id")) or agent_id,
        "executor_id": vid(s.get("executor_id")) or executor_id,
        "labels": labels_v1(s["labels"]) if "labels" in s else None, "data": None,
        "check_status": check_status_v1(s.get("check_status")),
    }


def task_v1(t: Obj) -> Obj:
    """v1 ``Task`` -> contract ``TaskWithState`` (``pod`` null: the uid is only in ``data``)."""
    return {"task_id": require(t.get("task_id"), "task.task_id"), "name": str(t.get("name", "")),
            "framework_id": require(t.get("framework_id"), "task.framework_id"),
            "agent_id": require(t.get("agent_id") or t.get("slave_id"), "task.agent_id"),
            "executor_id": vid(t.get("executor_id")), "resources": resources_v1(t.get("resources")),
            "labels": labels_v1(t.get("labels")), "pod": None, "data": None,
            "state": text(t.get("state") or "TASK_STAGING", "task.state")}


def task_v0(t: Obj) -> Obj:
    """A ``/master/state`` task -> contract ``TaskWithState``."""
    return {"task_id": require(t.get("id"), "task.id"), "name": str(t.get("name", "")),
            "framework_id": require(t.get("framework_id"), "task.framework_id"),
            "agent_id": require(t.get("slave_id") or t.get("agent_id"), "task.slave_id"),
            "executor_id": vid(t.get("executor_id")),
            "resources": resources_v0(t.get("resources"), t.get("role") or "*"),
            "labels": labels_v1(t.get("labels")), "pod": None, "data": None,
            "state": text(t.get("state") or "TASK_STAGING", "task.state")}


def status_v0(s: Obj, task: Obj) -> Obj:
    """One entry of a ``/master/state`` task's ``statuses`` -> contract ``TaskStatus``."""
    ts = s.get("timestamp")
    return {"task_id": task["task_id"], "state": text(s.get("state"), "status.state"), "source": None,
            "reason": None,
            "message": None, "uuid": None, "healthy": s.get("healthy"),
            "timestamp": epoch_seconds(ts, "status.timestamp"),
            "agent_id": task["agent_id"], "executor_id": task["executor_id"],
            "labels": labels_v1(s["labels"]) if "labels" in s else None, "data": None,
            "check_status": None}


def task_key(task: Obj) -> TaskKey:
    """The identity of a contract task or status: ``(framework_id or "", task_id)``."""
    return (task.get("framework_id") or "", task["task_id"])


def status_payload(status: Obj, framework_id: str | None) -> Obj:
    """The ``task.status_updated`` payload: the status, and its task's framework (schema v3)."""
    return {"framework_id": framework_id or None, "status": status}


def status_clock(status: Obj) -> str:
    """Whose clock stamped a status: the master's for ``SOURCE_MASTER`` updates, else the agent's
    (the executor's updates are stamped by the agent that forwards them; a v0 listing names no
    source: its statuses are the agent's)."""
    return "master" if status.get("source") == "SOURCE_MASTER" else "agent"


def text(value: Any, what: str) -> str:
    """``value`` as a non-empty string, else ``ValueError`` naming ``what``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is missing or not a string: {value!r:.60}")
    return value


def require(value: Any, what: str) -> str:
    """``value`` as a non-empty id string, else ``ValueError`` naming ``what`` (the record is quarantined)."""
    v = vid(value)
    if v is None:
        raise ValueError(f"{what} is missing or not an id: {value!r:.60}")
    return v


_DURATION = re.compile(r"^\s*([0-9.]+)\s*(ns|us|ms|secs|mins|hrs|days|weeks)\s*$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0,
                 "days": 86400.0, "weeks": 604800.0}


def duration_seconds(text: Any, default: float) -> float:
    """A Mesos flag duration (``"10mins"``, ``"15secs"``, ``"1weeks"``) in seconds; ``default``
    when absent or not understood."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    try:
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2)] if m else default
    except ValueError:  # "1.2.3secs"
        return default


def master_info_v0(m: Obj) -> Obj:
    """``leader_info`` of a ``/master/state`` (1.1+: ``id``, ``pid``, ``port``, ``hostname``, and
    ``address`` in later versions) -> contract ``MasterInfo`` (the ip read from the pid)."""
    addr = obj(m.get("address"))
    host, port = pid_address(m.get("pid"))
    return {"id": require(m.get("id"), "leader_info.id"),
            "hostname": addr.get("hostname") or m.get("hostname") or None,
            "ip": addr.get("ip") or host, "port": int(addr.get("port") or m.get("port") or port or 5050),
            "version": m.get("version")}


def pid_address(pid: Any) -> tuple[str | None, int | None]:
    """``"master@10.0.0.1:5050"`` -> ``("10.0.0.1", 5050)``; ``(None, None)`` when not a pid."""
    if not isinstance(pid, str) or "@" not in pid:
        return None, None
    host, _, port = pid.rpartition("@")[2].partition(":")
    return (host or None), (int(port) if port.isdigit() else None)


def offer_v0(o: Obj, hostname: str) -> Obj:
    """An outstanding offer of a ``/master/state`` framework -> contract ``Offer``.

    The listing gives resources as a summed map without reservation roles
    (``*`` here) and no hostname: the caller passes the agent's.
    """
    return {"id": require(o.get("id"), "offer.id"),
            "framework_id": require(o.get("framework_id"), "offer.framework_id"),
            "agent_id": require(o.get("slave_id") or o.get("agent_id"), "offer.slave_id"),
            "hostname": hostname, "resources": resources_v0(o.get("resources"), keep_zero=False)}
