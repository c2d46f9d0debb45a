"""Property-based checks of the published OpenAPI document with schemathesis: no 5xx, ever.

Bounded: a few examples per operation (valid and invalid parameters), the
whole run under a time budget. The live tail (/events) never ends by itself
and is excluded; tests/integration/test_query_api.py covers it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from kmevents.adapters import kafka as kafka_adapter
from kmevents.settings import ApiToken
from tests.integration.test_ingest_api import Server
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.stacks import TestStack

BUDGET_SECONDS = 25.0
EXAMPLES = 6


def test_no_operation_answers_5xx_to_generated_requests(stack: TestStack) -> None:
    tag = uuid.uuid4().hex[:8]
    s = stack.settings.model_copy(deep=True)
    s.kafka.events_topic, s.kafka.snapshots_topic = f"st{tag}.events", f"st{tag}.snapshots"
    s.kafka.deadletter_topic, s.kafka.alerts_topic = f"st{tag}.deadletter", f"st{tag}.alerts"
    s.etcd.prefix = f"/st{tag}/kmevents/v1"
    s.cluster = f"c{tag}"
    s.api.tokens = [ApiToken(token="all", name="all", scopes=["read", "ingest"])]
    s.api.max_body_bytes = 64 * 1024
    asyncio.run(kafka_adapter.ensure_topics(s.kafka))

    async def prepare() -> None:
        await ingest_sim(s, s.cluster, 400, seed=5)
        await run_worker_until_caught_up(s)

    asyncio.run(prepare())
    auth = {"Authorization": "Bearer all"}
    began = time.monotonic()
    statuses: dict[str, set[int]] = {}
    with Server(s) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path_regex=r"/events$",
                                                                               method="GET")
        ops = [r.ok() for r in schema.get_all_operations()]
        assert len(ops) >= 9, [o.label for o in ops]
        for op in ops:
            for mode, fixed in ((GenerationMode.POSITIVE, {}), (GenerationMode.NEGATIVE, {}),
                                (GenerationMode.POSITIVE, {"cluster": s.cluster})):
                if time.monotonic() - began > BUDGET_SECONDS:
                    break
                names = {p.name for p in op.path_parameters}
                strategy = op.as_strategy(mode, path_parameters={k: v for k, v in fixed.items() if k in names})

                @given(case=strategy)
                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                def call(case: schemathesis.Case) -> None:
                    op_label = case.operation.label
                    if time.monotonic() - began > BUDGET_SECONDS:
                        return
                    resp = case.call(base_url=url, headers=auth, timeout=30)
                    statuses.setdefault(op_label, set()).add(resp.status_code)
                    assert resp.status_code < 500, (op_label, case.path_parameters, case.query, resp.status_code,
                                                    resp.text[:500])

                try:
                    call()
                except Unsatisfiable:  # nothing to make invalid (no parameters): fine
                    assert mode is GenerationMode.NEGATIVE, op.label
    print("schemathesis statuses:", {k: sorted(v) for k, v in statuses.items()})
    assert statuses, "schemathesis generated no request"
    # Real data was reached, not only refusals.
    assert any(200 in codes for label, codes in statuses.items() if "{kind}" in label), statuses
