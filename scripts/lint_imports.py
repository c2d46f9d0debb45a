"""Check the import layers (import-linter contracts in pyproject.toml) over the installed layout.

kmevents installs ``processors/`` and ``replay/`` as ``kmevents.processors`` and
``kmevents.replay`` (a package-dir mapping), which import-linter's graph builder
cannot follow: it walks the ``kmevents`` folder. So the three folders are copied
into one ``kmevents`` package in a temporary directory and checked there.

    python scripts/lint_imports.py                 # exit 0: every contract kept
    python scripts/lint_imports.py --plant MOD:LINE  # also add LINE to module MOD (tests use it)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shadow_tree(dest: Path) -> Path:
    """``dest/kmevents`` as installed: kmevents/ with processors/ and replay/ inside it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    pkg = dest / "kmevents"
    shutil.copytree(ROOT / "kmevents", pkg, ignore=ignore)
    shutil.copytree(ROOT / "processors", pkg / "processors", ignore=ignore)
    shutil.copytree(ROOT / "replay", pkg / "replay", ignore=ignore)
    return pkg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plant", action="append", default=[], metavar="MODULE:LINE",
                    help="append LINE to MODULE (dotted, under kmevents) in the copy before checking")
    args = ap.parse_args(argv)
    lint = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="kmevents-layers-") as tmp:
        pkg = shadow_tree(Path(tmp))
        for spec in args.plant:
            module, line = spec.split(":", 1)
            rel = Path(*module.split(".")[1:])
            path = pkg / rel / "__init__.py" if (pkg / rel).is_dir() else (pkg / rel).with_suffix(".py")
            path.write_text(path.read_text() + "\n" + line + "\n")
        env = {**os.environ, "PYTHONPATH": tmp}
        return subprocess.call([str(lint), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main())
