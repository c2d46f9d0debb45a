"""Fields of decoded JSON that may hold anything.

``obj(d, "payload")`` is the field when it is a JSON object, else an empty
one: the readers of raw events (history, reports, monitor rules) look into
events that may be malformed and must not fail on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def obj(d: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``d[key]`` when it is a dict, else ``{}`` (a missing key included)."""
    v = d.get(key)
    return v if isinstance(v, dict) else {}
