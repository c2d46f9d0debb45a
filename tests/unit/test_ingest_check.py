"""What ingest checks per event before producing it (``Ingestor.check``/``prepare``: no I/O, no broker).

The ingest clock (issue 14, H3): one event dated 9999-12-31 would make the
reducer age every terminal entity away, so an ``occurred_at`` further ahead
of now than ``ingest.max_future_skew_seconds`` is refused. And one odd event
never aborts a batch: an unexpected error refuses that event alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kmevents.contract import ContractViolation
from kmevents.ingest import Ingestor, Redactor
from kmevents.settings import Settings

EXAMPLES = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "examples.json").read_text())
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _event(occurred_at: object = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {**EXAMPLES[0], "occurred_at": occurred_at}


def _ingestor(skew: float = 300.0, **kw: Any) -> Ingestor:
    s = Settings()
    s.ingest.max_future_skew_seconds = skew
    return Ingestor(s, clock=lambda: NOW, **kw)


def _refusal(ing: Ingestor, obj: Any) -> dict[str, str]:
    with pytest.raises(ContractViolation) as info:
        ing.check(obj)
    return dict(info.value.errors)


@pytest.mark.parametrize("ahead", [0, 1, 299.999999, 300])
def test_events_at_most_the_allowed_skew_ahead_of_the_ingest_clock_are_accepted(ahead: float) -> None:
    assert _ingestor().check(_event(NOW + ahead)).canonical["cluster"]


def test_an_event_further_ahead_than_the_skew_is_refused_saying_by_how_much_and_which_setting() -> None:
    reason = _refusal(_ingestor(), _event("2026-01-01T00:05:00.000001Z"))["occurred_at"]
    assert reason.startswith("2026-01-01T00:05:00.000001Z is 5 minutes ahead of the ingest clock "
                             "(2026-01-01T00:00:00.000000Z); at most 300 s is accepted")
    assert "KMEVENTS_INGEST__MAX_FUTURE_SKEW_SECONDS" in reason and "fix the source's clock" in reason
    far = _refusal(_ingestor(), _event("9999-12-31T23:59:59.999999Z"))["occurred_at"]
    assert "is 7,974 years ahead" in far


def test_the_skew_is_a_setting() -> None:
    assert _ingestor(skew=86400 * 365 * 8000).check(_event("9999-12-31T23:59:59Z"))
    assert "at most 0 s" in _refusal(_ingestor(skew=0), _event(NOW + 0.001))["occurred_at"]


def test_the_past_is_not_limited() -> None:
    assert _ingestor().check(_event("1970-01-01T00:00:00Z"))


class _Broken(Redactor):
    """A redactor with a bug that only some events meet."""

    def __call__(self, event: dict[str, Any]) -> list[str]:
        if event["source"]["seq"] == 13:
            raise KeyError("labels")
        return super().__call__(event)


def test_an_unexpected_error_refuses_that_event_alone_with_its_index_and_the_error(caplog) -> None:
    ing = _ingestor(redactor=_Broken())
    odd = _event()
    odd["source"] = {**odd["source"], "seq": 13}
    prepared = [ing.prepare(i, obj) for i, obj in enumerate([_event(), odd, _event()])]
    assert [data is not None for _, data, _ in prepared] == [True, False, True]
    bad = prepared[1][0]
    assert bad.index == 1 and bad.errors[0][0] == "-"
    assert bad.errors[0][1].startswith("unexpected error while checking this event (KeyError: 'labels')")
    assert "the other events are not affected" in bad.errors[0][1]
    assert "could not be checked" in caplog.text


def test_an_event_that_cannot_be_stored_as_json_is_refused_not_raised() -> None:
    pod_event = next(e for e in EXAMPLES if e["type"] == "pod.upserted")
    event = json.loads(json.dumps(pod_event))
    event["occurred_at"] = "2026-01-01T00:00:00Z"
    event["payload"]["pod"]["volumes"] = [{"name": "v", "kind": "nfs", "source": {"n": 2**70}}]
    reason = _refusal(_ingestor(), event)["-"]
    assert "cannot be stored as JSON" in reason and "64 bits" in reason


def test_an_event_over_the_size_limit_is_refused_with_the_sizes() -> None:
    reason = _refusal(_ingestor(max_event_bytes=100), _event())["-"]
    assert "bytes as stored, over the limit of 100" in reason


def test_the_horizon_follows_the_clock() -> None:
    now = [NOW]
    s = Settings()
    ing = Ingestor(s, clock=lambda: now[0])
    event = _event(NOW + 350)
    assert "occurred_at" in _refusal(ing, event)
    now[0] = NOW + 0.5  # within the same second: the same horizon
    assert "occurred_at" in _refusal(ing, event)
    now[0] = NOW + 60
    assert ing.check(event)
