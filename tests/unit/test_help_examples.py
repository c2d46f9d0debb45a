"""Every command's --help shows how it is called (issue 18: "--help of every command has an example")."""

from __future__ import annotations

import re

import pytest

from kmevents.cli import COMMAND_MODULES, main

COMMANDS = [m.rstrip("_") for m in COMMAND_MODULES]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_an_example_of_the_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert re.search(rf"^\s+(?:\$ )?kmevents {command}(?: |$)", text, re.M), f"`kmevents {command} --help` shows " \
        "no example line (an indented `kmevents <command> ...`)"
