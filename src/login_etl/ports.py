"""The small interfaces the pipeline depends on; adapters/ implements them.

The queue's, which only the scheduled drain and the ledger's prune use, are in ``queue_ports``:
the SQS trigger's cold start does without them (docs/benchmarks.md, "Cold start").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from login_etl.deadline import Deadline
from login_etl.domain.models import UserLoginRow


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``LoginStore.write`` did.

    Either it committed (``rejected`` empty): ``written`` new rows, ``duplicates`` messages
    already in the ledger. Or Postgres refused some rows: nothing was committed and
    ``rejected`` maps their message ids to a SQLSTATE, so the caller can retry without them.
    """

    written: int = 0
    duplicates: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


class LoginStore(Protocol):
    """Where rows go: exactly once per message id, all of a call in one transaction."""

    def write(
        self, rows: Sequence[tuple[str, UserLoginRow]], deadline: Deadline | None = None
    ) -> WriteResult:
        """Write (message id, row) pairs; message ids are unique within one call.

        Raises ``DeadlineExceededError`` (nothing written) rather than run past ``deadline``.
        """
        ...


class LedgerPruner(Protocol):
    """Forgets ledger entries older than the window in which a message can come back."""

    def prune(
        self,
        retention_s: float,
        batch_rows: int,
        keep_going: Callable[[], bool],
        deadline: Deadline | None = None,
    ) -> int:
        """Delete entries older than ``retention_s`` a batch at a time while ``keep_going()``
        says so and old entries remain; the number deleted."""
        ...


class DataKeySource(Protocol):
    """Where the plaintext Fernet data key comes from (KMS, in production)."""

    def data_key(self) -> bytes:
        """Return the 32-byte plaintext data key. Raises if the key service is unavailable."""
        ...
