"""The time an invocation has left: every wait of a batch is bounded by it.

Lambda kills an invocation at its timeout, wherever it is. A batch that cannot finish must
instead fail a little before, with an exception, so that the event source mapping retries the
whole batch and no transaction of it is left running on the server (docs/guarantees.md,
"Deadlines").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# What an invocation keeps back from its timeout: time to roll back or end a transaction the
# client gave up on, log, and answer before Lambda's kill.
DEADLINE_MARGIN_MS = 2_000


class DeadlineExceededError(RuntimeError):
    """The invocation's time (less its margin) ran out before the batch could be written.

    Nothing of the batch is acknowledged: the whole batch is retried.
    """

    def __init__(self) -> None:
        super().__init__(
            "the invocation's time ran out before the batch was written; it will be retried"
        )


@dataclass(frozen=True, slots=True)
class Deadline:
    """The invocation's remaining time (Lambda's ``get_remaining_time_in_millis``) less a margin."""

    remaining_ms: Callable[[], int]
    margin_ms: int = DEADLINE_MARGIN_MS

    def left_s(self) -> float:
        """Seconds before the margin starts; zero or less once it has."""
        return (self.remaining_ms() - self.margin_ms) / 1000

    def check(self) -> float:
        """``left_s()``, or ``DeadlineExceededError`` if nothing is left."""
        left = self.left_s()
        if left <= 0:
            raise DeadlineExceededError
        return left
