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
