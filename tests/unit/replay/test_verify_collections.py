"""verify pauses the cyclic GC while it checks a snapshot or delta (verify.collections_paused)."""

from __future__ import annotations

import gc

import pytest
from kmevents.replay import verify


def test_the_collector_is_paused_inside_and_resumed_as_it_was_even_on_an_error() -> None:
    assert gc.isenabled()
    with verify.collections_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), verify.collections_paused():
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with verify.collections_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # (paused by someone else: left so)
    finally:
        gc.enable()


def test_a_check_runs_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(verify, "match", lambda *a: seen.append(gc.isenabled()))
    verify._match(None, b"", None, None)  # type: ignore[arg-type]
    assert seen == [False] and gc.isenabled()
