"""The summary's arithmetic: in = gave events + skipped + quarantined + unexplained, events = out + refused
+ unsent, totals, exit codes, and what the text and JSON forms show."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kmevents.sources.summary import MAX_LISTED, Summary, Tally


def worked_example() -> Tally:
    """The module docstring's example: 5 audit lines."""
    t = Tally()
    t.records = 5
    t.quarantine("line is not JSON")           # the truncated line
    t.skip("get pods (200)")
    t.skip("delete pods: pod uid unknown")
    t.with_events = 2
    t.events = 4
    t.accepted = 4
    return t


def test_the_worked_example_adds_up_with_nothing_unexplained() -> None:
    t = worked_example()
    assert t.records == t.with_events + t.skipped_total + t.quarantined + t.unexplained
    assert t.unexplained == 0
    assert t.events == t.accepted + t.refused + t.unsent


def test_a_record_with_no_event_and_no_reason_is_unexplained() -> None:
    t = worked_example()
    t.records += 1  # a heartbeat the parser neither mapped nor counted
    assert t.unexplained == 1
    s = Summary("import k8s-audit", sources={"audit.log": t})
    assert "1 records gave no event and no reason" in s.text()
    assert s.as_dict()["sources"]["audit.log"]["unexplained"] == 1
    assert s.exit_code == 1  # the quarantined line


@st.composite
def outcomes(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A run as (source, what happened to one record or event)."""
    kinds = st.sampled_from(["events", "skip", "quarantine", "nothing"])
    return draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), kinds), max_size=60))


@given(outcomes(), st.data())
def test_the_two_equations_hold_per_source_and_in_the_totals(run: list[tuple[str, str]], data: st.DataObject) -> None:
    s = Summary("follow k8s")
    unexplained = 0
    for source, what in run:
        t = s.tally(source)
        t.records += 1
        if what == "events":
            n = data.draw(st.integers(1, 4))
            t.with_events += 1
            t.events += n
            for _ in range(n):
                fate = data.draw(st.sampled_from(["accepted", "refused", "unsent"]))
                if fate == "accepted":
                    t.accepted += 1
                elif fate == "refused":
                    t.refuse("pod.upserted: payload.pod.uid: required")
                else:
                    t.unsent += 1
        elif what == "skip":
            t.skip(data.draw(st.sampled_from(["HEARTBEAT", "BOOKMARK"])))
        elif what == "quarantine":
            t.quarantine(data.draw(st.sampled_from(["KeyError: 'uid'", "line is not JSON"])))
        else:
            unexplained += 1
    total = s.totals()
    for t in [*s.sources.values(), total]:
        assert t.records == t.with_events + t.skipped_total + t.quarantined + t.unexplained
        assert t.events == t.accepted + t.refused + t.unsent
    assert total.unexplained == unexplained
    assert total.records == len(run)
    assert sum(total.quarantine_reasons.values()) == total.quarantined
    assert len(total.refusals) == min(total.refused, MAX_LISTED)
    d = s.as_dict()["total"]
    assert (d["in"], d["out"], d["refused"], d["quarantined"], d["skipped"]) == (
        total.records, total.accepted, total.refused, total.quarantined, total.skipped_total)


def test_exit_codes_clean_zero_problems_one_fatal_two() -> None:
    s = Summary("follow k8s")
    s.tally("k8s/pods").records = 3
    assert s.exit_code == 0
    s.tally("k8s/pods").skip("BOOKMARK")
    assert s.exit_code == 0, "skipping on purpose is not a problem"
    for spoil in (lambda t: t.refuse("x"), lambda t: t.quarantine("x"), lambda t: t.fail("TypeError: x"),
                  lambda t: setattr(t, "unsent", 1)):
        bad = Summary("follow k8s")
        spoil(bad.tally("k8s/pods"))
        assert bad.exit_code == 1
    s.fatal = "could not write to t.events"
    assert s.exit_code == 2


def test_a_stream_error_that_was_recovered_from_still_makes_the_run_exit_one() -> None:
    s = Summary("follow mesos-operator")
    t = s.tally("mesos-operator")
    t.fail("AttributeError: 'list' object has no attribute 'get'")
    t.restarts = 1
    t.records, t.with_events, t.events, t.accepted = 10, 10, 12, 12
    assert s.exit_code == 1
    text = s.text()
    assert "stream error: AttributeError" in text and "restarted 1 times" in text


def test_the_text_has_one_row_per_source_and_a_total_and_the_reasons() -> None:
    s = Summary("import k8s-watch", dry_run=True, destination="out.jsonl", quarantine_to="out.jsonl.quarantine.jsonl")
    a, b = s.tally("pods.json"), s.tally("nodes.json")
    a.records, a.with_events, a.events, a.accepted = 3, 2, 2, 2
    a.skip("pods watch event 'ERROR'")
    b.records = 1
    b.quarantine("KeyError: 'metadata'")
    lines = s.text().splitlines()
    assert lines[0] == ("kmevents import k8s-watch: dry run: events to out.jsonl, "
                        "quarantined records to out.jsonl.quarantine.jsonl")
    assert lines[1].split() == ["source", "in", "out", "refused", "quarantined", "skipped", "unexplained"]
    assert lines[2].split() == ["pods.json", "3", "2", "0", "0", "1", "0"]
    assert lines[3].split() == ["nodes.json", "1", "0", "0", "1", "0", "0"]
    assert lines[4].split() == ["total", "4", "2", "0", "1", "1", "0"]
    assert "  pods.json: skipped pods watch event 'ERROR' x1" in lines
    assert "  nodes.json: quarantined KeyError: 'metadata' x1" in lines


def test_long_quarantine_reasons_are_grouped_by_their_first_line() -> None:
    t = Tally()
    t.quarantine("ValueError: bad\nmore detail")
    t.quarantine("ValueError: bad\nother detail")
    t.quarantine("x" * 500)
    assert t.quarantine_reasons["ValueError: bad"] == 2
    assert max(len(r) for r in t.quarantine_reasons) == 120
