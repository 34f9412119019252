"""``login-etl rekey``: re-encrypt existing rows under the current key, resumably.

After ``keys rotate``, new rows carry the new key's tokens and old rows the old key's, so the
same device masks to two different values until the old rows are re-keyed. Each batch is one
transaction (``SELECT ... FOR UPDATE SKIP LOCKED``, then one ``UPDATE``); a row is selected
while either token does not start with the current key's prefix, so an interrupted run just
continues where it stopped, and the function's concurrent inserts are never blocked.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from login_etl.adapters.postgres.schema import TABLE
from login_etl.domain.keyring import Keyring, UnmaskError
from login_etl.domain.masking import token_prefix

if TYPE_CHECKING:
    import pg8000.native

# Rows with a token that is not the current key's. COALESCE: a NULL token needs no re-keying.
_STALE = (
    "(COALESCE(left(masked_ip, 12), :prefix) <> :prefix"
    " OR COALESCE(left(masked_device_id, 12), :prefix) <> :prefix)"
)


class RekeyError(RuntimeError):
    """A token the keyring cannot decrypt; nothing of its batch was changed."""


@dataclass(slots=True)
class RekeyProgress:
    """How far a run got."""

    total: int
    done: int = 0
    batches: int = 0


def count_stale(conn: pg8000.native.Connection, keyring: Keyring) -> int:
    """Rows with at least one token not made by the current key."""
    return stale_summary(conn, keyring)[0]


def stale_summary(conn: pg8000.native.Connection, keyring: Keyring) -> tuple[int, tuple[int, ...]]:
    """(stale rows, the key ids their tokens name), in one scan: what the audit record says.

    Grouped by the two token prefixes, so the result has a row per pair of keys, not per row.
    """
    prefix = token_prefix(keyring.current.key_id)
    groups = conn.run(
        f"SELECT left(masked_ip, 12), left(masked_device_id, 12), count(*) FROM {TABLE}"  # noqa: S608
        f" WHERE {_STALE} GROUP BY 1, 2",
        prefix=prefix,
    )
    stale = sum(int(count) for _, _, count in groups)
    prefixes = {p for ip, device, _ in groups for p in (ip, device) if p not in (None, prefix)}
    return stale, tuple(sorted(_prefix_key_id(p) for p in prefixes))


def rekey(
    conn: pg8000.native.Connection,
    keyring: Keyring,
    *,
    batch_size: int = 1000,
    stale: int | None = None,
    on_batch: Callable[[RekeyProgress], None] | None = None,
) -> RekeyProgress:
    """Re-key every stale row, ``batch_size`` rows per transaction.

    ``stale``: the caller's ``count_stale`` (a full scan), if it already made one.
    """
    prefix = token_prefix(keyring.current.key_id)
    progress = RekeyProgress(total=count_stale(conn, keyring) if stale is None else stale)
    while True:
        conn.run("START TRANSACTION")
        try:
            rows = conn.run(
                f"SELECT ctid::text, masked_ip, masked_device_id FROM {TABLE}"  # noqa: S608
                f" WHERE {_STALE} LIMIT :limit FOR UPDATE SKIP LOCKED",
                prefix=prefix,
                limit=batch_size,
            )
            if rows:
                _update(conn, keyring, rows)
            conn.run("COMMIT")
        except BaseException:
            conn.run("ROLLBACK")
            raise
        if not rows:
            return progress
        progress.done += len(rows)
        progress.batches += 1
        if on_batch is not None:
            on_batch(progress)


def _update(conn: pg8000.native.Connection, keyring: Keyring, rows: list[list[str]]) -> None:
    try:
        remasked = [
            (ctid, _remask(keyring, ip), _remask(keyring, device)) for ctid, ip, device in rows
        ]
    except UnmaskError as error:
        raise RekeyError(f"a row has a token the keyring cannot decrypt: {error}") from None
    conn.run(
        f"UPDATE {TABLE} AS u SET masked_ip = v.ip, masked_device_id = v.device"  # noqa: S608
        " FROM unnest(CAST(:ctids AS tid[]), CAST(:ips AS varchar[]), CAST(:devices AS varchar[]))"
        " AS v(ctid, ip, device) WHERE u.ctid = v.ctid",
        ctids=[r[0] for r in remasked],
        ips=[r[1] for r in remasked],
        devices=[r[2] for r in remasked],
    )


def _prefix_key_id(prefix: str) -> int:
    """The key id in a token's first 12 characters (version byte, then the 8-byte key id)."""
    key_id: int = struct.unpack(">Q", base64.urlsafe_b64decode(prefix)[1:9])[0]
    return key_id


def _remask(keyring: Keyring, token: str | None) -> str | None:
    return None if token is None else keyring.remask(token)
