"""Pausing Python's cyclic garbage collector for the length of a batch."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is read and processed.

    A batch makes tens of thousands of objects (records, parsed bodies, rows) and no reference
    cycle, yet allocating them ran the collector some 60 times per 10,000 records: 5 % of
    the batch's instructions (callgrind, 114,400 down to 108,700 a message). Freeing by
    reference counting goes on; the collector resumes after the batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
