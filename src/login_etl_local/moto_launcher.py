"""Runs moto's server with three speed fixes to its SQS model and one thread-safety fix.

moto computes every queue attribute, including three scans of all messages that each do
datetime arithmetic per message, whenever a message is sent, and three times per message
received (to read the retention period). A queue of n messages therefore costs O(n) per
message and O(n^2) to drain: 0.43 s per ReceiveMessage at 1,000 queued messages, measured.
The fixes: wall-clock time from ``time.time()`` (what moto's datetime arithmetic computes,
slowly), the retention period read directly, and the three counts taken in one pass.

The thread-safety fix: moto's server answers each request on a thread of its own, and its SQS
backend is not thread-safe (``DeleteMessage`` rebuilds a queue's message list from a copy, so a
message sent, or moved to the DLQ, meanwhile vanished; two concurrent deletes resurrect each
other's message). With the event source mapping emulation and the scheduled drain on one queue,
13 to 621 of ~3,000 valid messages were lost per run. Every call into the SQS backend now holds
one lock; a long poll waits for messages without it (``_wait_for_messages``), so senders are
never blocked behind a receive. Real SQS serves concurrent consumers: so must the emulator.

Used only by the local stack and the tests; the function never sees it.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable
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

# One lock for the whole SQS backend (all accounts and regions: a message moves between queues).
# Re-entrant, since backend methods call each other; a Condition so that a long poll can wait
# with the lock released and be woken by any change.
_SQS_LOCK = threading.RLock()
_SQS_CHANGED = threading.Condition(_SQS_LOCK)


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _SQS_CHANGED:
            try:
                return method(*args, **kwargs)
            finally:
                _SQS_CHANGED.notify_all()

    return locked


def _wait_for_messages(self: Any, timeout: int) -> None:
    """moto's long-poll wait, called with the lock held: release it while waiting."""
    with _SQS_CHANGED:
        _SQS_CHANGED.wait_for(lambda: self.messages, timeout=timeout)


def apply() -> None:
    """Install the fixes into the imported moto SQS model."""
    vars(models).update(unix_time=_unix_time, unix_time_millis=_unix_time_millis)
    models.SQSBackend.is_message_valid_based_on_retention_period = _retention_ok  # type: ignore[method-assign]
    models.Queue.attributes = property(_attributes)  # type: ignore[assignment,method-assign]
    for name, member in list(vars(models.SQSBackend).items()):
        if callable(member) and not name.startswith("_"):
            setattr(models.SQSBackend, name, _serialised(member))
    models.Queue.wait_for_messages = _wait_for_messages  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    server.main(sys.argv[1:])
