"""The cyclic collector is paused for a batch, and always resumed as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from login_etl.gc_pause import cyclic_gc_paused


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_during_the_batch_and_resumed_after() -> None:
    gc.enable()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_when_the_batch_raises() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("the store failed")
    assert gc.isenabled()


def test_a_collector_someone_else_disabled_stays_disabled() -> None:
    gc.disable()
    with cyclic_gc_paused(), cyclic_gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
