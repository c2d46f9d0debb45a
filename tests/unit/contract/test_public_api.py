"""The contract's public API is curated and complete."""

from __future__ import annotations

import kmevents.contract as contract
from kmevents.errors import ContractError


def test_all_names_exist_and_are_sorted_uniquely() -> None:
    assert len(set(contract.__all__)) == len(contract.__all__)
    for name in contract.__all__:
        assert hasattr(contract, name), name


def test_core_names_are_exported() -> None:
    assert {"EVENT_TYPES", "validate_event", "encode", "decode_fast", "decode_strict", "ContractViolation",
            "SCHEMA_VERSIONS", "TERMINAL_TASK_STATES"} <= set(contract.__all__)


def test_errors_belong_to_the_one_error_tree() -> None:
    assert issubclass(contract.ContractViolation, ContractError)
    assert issubclass(contract.UnknownEventType, contract.ContractViolation)
    assert issubclass(contract.DecodeError, ContractError)


def test_terminal_states_exclude_states_a_task_can_come_back_from() -> None:
    assert "TASK_LOST" not in contract.TERMINAL_TASK_STATES
    assert "TASK_UNREACHABLE" not in contract.TERMINAL_TASK_STATES
    assert set(contract.TASK_STATES) >= contract.TERMINAL_TASK_STATES
    assert {"TASK_KILLING", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"} <= set(contract.TASK_STATES)


def test_full_mesos_reason_list() -> None:
    assert len(contract.TASK_REASONS) == 35
    assert not any("SLAVE" in r for r in contract.TASK_REASONS)


def test_every_public_name_has_one_home_module() -> None:
    assert sorted(contract._HOME) == sorted(contract.__all__)  # noqa: SLF001


def test_decoding_builds_no_model() -> None:
    # Replay decodes with the codec alone; the models (pydantic classes) cost every
    # reading command ~0.2-0.3 s of start-up.
    import subprocess
    import sys

    code = ("import sys; from kmevents.contract import decode_fast, DecodeError, canonical_time; "
            "decode_fast(b'{\"type\": \"task.status_updated\", \"schema_version\": 1, \"payload\": "
            "{\"status\": {}}}'); import kmevents.replay.engine, kmevents.replay.logsource, kmevents.commands._source; "
            "import kmevents.commands.state, kmevents.replay.render; "
            "print(sorted(m for m in sys.modules if m.startswith(('kmevents.contract.', 'kmevents.ingest'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # noqa: S307 - our own printed list
    assert "kmevents.contract.registry" not in loaded and "kmevents.contract.strict" not in loaded, loaded
    assert not any(m.startswith("kmevents.ingest") for m in loaded)
