"""`kmevents completion bash|zsh` (issue 18): bash sources the script and completes commands,
subcommands, option values and kinds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kmevents.cli import main


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["completion", "bash"]) == 0
    p = tmp_path_factory.mktemp("completion") / "kmevents.bash"
    p.write_text(buf.getvalue())
    return p


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the command line ``words`` (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in ("kmevents", *words))
    prog = (f"source '{script}'\nCOMP_WORDS=({quoted})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
            "_kmevents\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completes_commands(script: Path) -> None:
    assert complete(script, "ge") == ["get"]
    assert set(complete(script, "st")) == {"stack", "state"}
    assert "clusters" in complete(script, "")


def test_bash_completes_kinds_for_get_and_kind_slash_for_history(script: Path) -> None:
    assert complete(script, "get", "p") == ["po", "pod", "pods"]
    assert "pods,svc" in complete(script, "get", "pods,s")
    assert complete(script, "--context", "x", "get", "--cluster", "c", "rc") == ["rc", "rcs"]
    assert "agents/" in complete(script, "history", "ag")


def test_bash_completes_subcommands_options_and_their_choices(script: Path) -> None:
    assert complete(script, "stack", "u") == ["up"]
    assert complete(script, "get", "-o", "w") == ["wide"]
    assert "--field-selector" in complete(script, "get", "pods", "--f")
    assert complete(script, "config", "use") == ["use-context"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_loads_and_offers_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    p = tmp_path / "_kmevents"
    p.write_text(capsys.readouterr().out)
    prog = (f"autoload -U compinit && compinit -u -d {tmp_path}/zcompdump\nsource {p}\n"
            # as zsh's bashcompinit calls the function: sh emulation, words from 0
            "t() { emulate -L sh; COMP_WORDS=(kmevents get p); COMP_CWORD=2; COMPREPLY=(); _kmevents; "
            "print -l -- \"${COMPREPLY[@]}\"; }\nt\n")
    r = subprocess.run(["zsh", "-f", "-c", prog], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "pods" in r.stdout.split()  # zsh filters the candidates by the word itself
