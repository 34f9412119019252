"""Runs moto's server with three speed fixes to its SQS model; semantics are unchanged.

moto computes every queue attribute, including three scans of all messages that each do
datetime arithmetic per message, whenever a message is sent, and three times per message
received (to read the retention period). A queue of n messages therefore costs O(n) per
message and O(n^2) to drain: 0.43 s per ReceiveMessage at 1,000 queued messages, measured.
The fixes: wall-clock time from ``time.time()`` (what moto's datetime arithmetic computes,
slowly), the retention period read directly, and the three counts taken in one pass.
Used only by the local stack and the tests; the function never sees it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from moto import server
from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
from moto.sqs import models


def _unix_time(dt: Any = None) -> float:
    return time.time() if dt is None else _ORIGINAL_UNIX_TIME(dt)


def _unix_time_millis(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else _ORIGINAL_UNIX_TIME_MILLIS(dt)


def _retention_ok(self: Any, queue_name: str, message: Any) -> bool:
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > time.time())


def _counts(queue: Any) -> tuple[int, int, int]:
    now = time.time() * 1000.0
    visible = delayed = not_visible = 0
    for message in queue._messages:
        is_visible = now > message.visible_at
        is_delayed = now < message.delayed_until
        visible += is_visible and not is_delayed
        delayed += is_delayed
        not_visible += not is_visible
    return visible, delayed, not_visible


def _attributes(self: Any) -> dict[str, Any]:
    visible, delayed, not_visible = _counts(self)
    result: dict[str, Any] = {}
    names = list(self.BASE_ATTRIBUTES)
    if self.fifo_queue:
        names += self.FIFO_ATTRIBUTES
    if self.kms_master_key_id:
        names += self.KMS_ATTRIBUTES
    for name in names:
        if name == "ApproximateNumberOfMessages":
            result[name] = visible
        elif name == "ApproximateNumberOfMessagesDelayed":
            result[name] = delayed
        elif name == "ApproximateNumberOfMessagesNotVisible":
            result[name] = not_visible
        else:
            result[name] = getattr(self, camelcase_to_underscores(name))
    if self.policy:
        result["Policy"] = self.policy
    if self.redrive_policy:
        result["RedrivePolicy"] = json.dumps(self.redrive_policy)
    return {k: str(v).lower() if isinstance(v, bool) else v for k, v in result.items()}


_ORIGINAL_UNIX_TIME = unix_time
_ORIGINAL_UNIX_TIME_MILLIS = unix_time_millis


def apply() -> None:
    """Install the fixes into the imported moto SQS model."""
    vars(models).update(unix_time=_unix_time, unix_time_millis=_unix_time_millis)
    models.SQSBackend.is_message_valid_based_on_retention_period = _retention_ok  # type: ignore[method-assign]
    models.Queue.attributes = property(_attributes)  # type: ignore[assignment,method-assign]


if __name__ == "__main__":
    apply()
    server.main(sys.argv[1:])
