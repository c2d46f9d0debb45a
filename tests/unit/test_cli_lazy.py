"""A run builds only the parser of the command it runs (kmevents/cli.py ``chosen_command``), and
that parser is the one the full parser holds for the command: same help, same errors."""

from __future__ import annotations

import argparse

import pytest

from kmevents import cli

COMMANDS = sorted(cli._MODULE_OF_COMMAND)


@pytest.mark.parametrize(("argv", "chosen"), [
    (["history", "pod/a"], "history"),
    (["-v", "state", "--offset", "3"], "state"),
    (["--context", "prod", "get", "pods"], "get"),
    (["--context=prod", "--tz", "UTC", "diff"], "diff"),
    (["import", "audit", "f.log"], "import"),
    (["--verbose", "verify"], "verify"),
    ([], None),  # no command: every command is listed
    (["--help"], None),
    (["-h", "state"], None),
    (["--version"], None),
    (["histroy"], None),  # not a command: argparse names the choices
    (["--bogus", "state"], None),  # an option kmevents has not: the full parser refuses it
    (["completion", "bash"], None),  # writes every command's options
    (["--context"], None),
])
def test_chosen_command(argv: list[str], chosen: str | None) -> None:
    assert cli.chosen_command(argv) == chosen


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_only_the_chosen_command_is_registered() -> None:
    assert set(_subparsers(cli.build_parser("history"))) == {"history"}
    assert set(_subparsers(cli.build_parser("import"))) == {"import"}
    assert set(_subparsers(cli.build_parser())) == set(COMMANDS)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in cli._NEEDS_ALL])
def test_a_commands_own_parser_is_the_full_parsers(command: str) -> None:
    lazy = _subparsers(cli.build_parser(command))[command]
    full = _subparsers(cli.build_parser())[command]
    assert lazy.prog == full.prog
    assert lazy.format_help() == full.format_help()


def test_main_uses_the_lazy_parser_for_help_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["history", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out == _subparsers(cli.build_parser())["history"].format_help()
    with pytest.raises(SystemExit) as e:
        cli.main(["--tz", "UTC", "history", "pod/a", "--bogus"])
    assert e.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["histroy"])
    assert "invalid choice: 'histroy'" in capsys.readouterr().err


def test_a_commands_result_is_never_turned_into_text() -> None:
    """Python 3.11's asyncio.run puts back its SIGINT handler when the coroutine ends, and the
    failed enum lookup of the handler it replaced formats repr() of the task, so of its result,
    whole (twice): a command's result of 144k pods took ~5 s and most of 1.3 GB there
    (kmevents/commands/_source.py ``_Held``)."""
    import signal

    from kmevents.commands._source import run

    calls: list[int] = []

    class Big:
        def __repr__(self) -> str:
            calls.append(1)
            return "Big()"

    async def main() -> Big:
        return Big()

    # asyncio.run takes that path when SIGINT has Python's default handler (a test runner may have its own)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        got = run(main)
    finally:
        signal.signal(signal.SIGINT, before)
    assert isinstance(got, Big) and calls == []
