"""The package-dir mapping installs processors/ and replay/ under kmevents.*."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = cfg["package-dir"]
    listed = set(cfg["packages"])
    found = set()
    for top, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([top, *rel.parts]) if rel.parts else top)
    missing = found - listed
    assert not missing, f"add to [tool.setuptools].packages: {sorted(missing)}"


def test_processors_and_replay_import_under_the_kmevents_namespace() -> None:
    import kmevents.processors
    import kmevents.replay

    assert Path(kmevents.processors.__file__).parent.name == "processors"
    assert Path(kmevents.replay.__file__).parent.name == "replay"
