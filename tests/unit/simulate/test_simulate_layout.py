"""The scenario families stay layered: each module imports only the ones above it in the map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kmevents.simulate.scenarios as scenarios
from kmevents.simulate.scenarios.simulator import (
    ACTIONS,
    FIRST_INCIDENTS,
    PROFILES,
    RECURRING,
    WEIGHTS,
)

PACKAGE = Path(scenarios.__file__).parent
PREFIX = "kmevents.simulate.scenarios."


def _map_order() -> list[str]:
    """The modules in the order the package docstring lists them (the core first)."""
    return re.findall(r"^    (\w+)\.py", scenarios.__doc__ or "", re.MULTILINE)


def _scenario_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
            found.add((node.module or "")[len(PREFIX):])
        elif isinstance(node, ast.Import):
            found.update(a.name[len(PREFIX):] for a in node.names if a.name.startswith(PREFIX))
    return found


def test_the_package_map_lists_every_module_once() -> None:
    order = _map_order()
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert sorted(order) == modules
    assert len(set(order)) == len(order)


def test_each_family_imports_only_families_listed_before_it() -> None:
    order = _map_order()
    for module in order:
        for dep in _scenario_imports(module):
            assert order.index(dep) < order.index(module), f"{module} imports {dep}"


def test_every_action_drawn_or_timed_has_a_function() -> None:
    names = {n for n, _ in WEIGHTS} | {n for n, _ in RECURRING} | {n for n, _, _ in FIRST_INCIDENTS}
    for profile in PROFILES.values():
        names |= {n for n, _ in profile.weights + profile.processes + profile.recurring}
    assert names == set(ACTIONS)
