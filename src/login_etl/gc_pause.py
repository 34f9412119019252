"""Pausing Python's cyclic garbage collector for the length of a batch."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is read and processed.

    A batch makes tens of thousands of objects (records, parsed bodies, rows) and no reference
    cycle, yet allocating them runs the collector over and over, for nothing to collect
    (docs/instructions.md, "The cyclic GC"). Freeing by reference counting goes on; the
    collector resumes after the batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
