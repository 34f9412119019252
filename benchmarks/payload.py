"""The largest SQS batch Lambda can deliver in one invocation: its event must fit 6 MB.

Lambda's synchronous invocation payload is at most 6 MB (6,291,456 bytes), the serialized
event included; for an SQS batch that is what bounds the batch, long before 10,000 records
(the batch size's maximum). The size is computed from the bodies ``make bench`` sends, in the
event as ``probe.sqs_event`` builds it: by the serialized size of the
records of every round's own bodies, each event then built and checked whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from benchmarks.probe import sqs_event

PAYLOAD_LIMIT_BYTES = 6_291_456
_SEPARATOR = len(", ")  # json.dumps puts one between records

Bodies = Sequence[str]


def event_bytes(bodies: Bodies, build: Callable[[list[str]], dict[str, Any]] = sqs_event) -> int:
    """Bytes of the serialized event that delivers ``bodies``."""
    return len(json.dumps(build(list(bodies))).encode("utf-8"))


def estimate(
    sample: Bodies,
    limit: int = PAYLOAD_LIMIT_BYTES,
    build: Callable[[list[str]], dict[str, Any]] = sqs_event,
) -> int:
    """How many records of the sample's mean size fit ``limit`` bytes (not checked)."""
    empty = event_bytes([], build)
    return math.floor((limit - empty + _SEPARATOR) / record_bytes(sample, build))


def record_bytes(sample: Bodies, build: Callable[[list[str]], dict[str, Any]] = sqs_event) -> float:
    """The mean bytes a record of the sample adds to the event, its separator included."""
    return (event_bytes(sample, build) - event_bytes([], build) + _SEPARATOR) / len(sample)


def largest_batch(
    rounds: Iterable[Bodies],
    limit: int = PAYLOAD_LIMIT_BYTES,
    build: Callable[[list[str]], dict[str, Any]] = sqs_event,
) -> int:
    """The most records of every round's bodies (a prefix) whose event fits ``limit`` bytes.

    ``rounds``: the bodies of every round (an iterable: one round in memory at a time), each
    longer than what fits. Each record's serialized size is added up to the limit; then the
    event of that many records is built and serialized whole, the proof that it fits.
    """
    empty = event_bytes([], build)
    count: int | None = None
    for bodies in rounds:
        records = build(list(bodies))["Records"]
        total, fitting = empty - _SEPARATOR, 0
        for record in records:
            total += len(json.dumps(record).encode("utf-8")) + _SEPARATOR
            if total > limit:
                break
            fitting += 1
        else:
            raise ValueError(f"all {len(records)} bodies fit: generate more to find the limit")
        count = fitting if count is None else min(count, fitting)
        if event_bytes(bodies[:count], build) > limit:
            raise AssertionError(f"the event of {count} records does not fit {limit:,} bytes")
    if count is None:
        raise ValueError("no rounds")
    return count
