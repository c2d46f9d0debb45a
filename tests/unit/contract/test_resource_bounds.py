"""Resource amounts the fold cannot keep exact are refused at ingest (issue 14, C2)."""

from __future__ import annotations

import pytest

from kmevents.contract import ContractViolation, validate_event
from kmevents.contract.shapes import MAX_SCALAR


def _offer(cpus: float) -> dict:
    return {
        "type": "offer.offered", "schema_version": 1, "cluster": "prod-1",
        "source": {"kind": "mesos.scheduler", "stream_id": "sched-1", "seq": 1},
        "occurred_at": "2015-07-08T15:03:22.123000Z", "clock": "master", "raw_type": "OFFERS",
        "payload": {"offer": {"id": "o1", "framework_id": "f1", "agent_id": "a1", "hostname": "h1",
                              "resources": [{"name": "cpus", "role": "*", "scalar": cpus, "ranges": None}]}},
    }


def test_a_scalar_above_the_fixed_point_range_is_refused_at_its_path() -> None:
    with pytest.raises(ContractViolation) as err:
        validate_event(_offer(1e306))
    paths = [p for p, _ in err.value.errors]
    assert any(p.endswith("resources.0.scalar") for p in paths), err.value.errors


def test_the_largest_exact_scalar_is_accepted() -> None:
    canonical, _ = validate_event(_offer(MAX_SCALAR))
    assert canonical["payload"]["offer"]["resources"][0]["scalar"] == MAX_SCALAR
