"""``login-etl report``: what analysts see in ``user_logins``, without unmasking anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from login_etl.adapters.postgres.schema import TABLE, table_exists
from login_etl.domain.app_version import SQL_DECODE_EXPRESSION
from login_etl.domain.masking import token_key_id

if TYPE_CHECKING:
    import pg8000.native


@dataclass
class Report:
    """The figures of one report."""

    rows: int
    users: int
    devices: int
    ips: int
    null_locales: int
    duplicate_devices: list[list[Any]] = field(default_factory=list)  # token, rows, users
    duplicate_ips: list[list[Any]] = field(default_factory=list)
    per_day: list[list[Any]] = field(default_factory=list)
    per_version: list[list[Any]] = field(default_factory=list)
    per_device_type: list[list[Any]] = field(default_factory=list)
    # (key id, rows) of the data keys the rows' tokens were made with: after `keys rotate`,
    # equal values under two keys have two tokens, and duplicates no longer match across them.
    per_key: list[tuple[int, int]] = field(default_factory=list)


def build_report(conn: pg8000.native.Connection, top: int = 5) -> Report:
    """Counts, duplicate groups, rows per day / app version / device type."""
    if not table_exists(conn, TABLE):
        raise LookupError(f"there is no {TABLE} table yet: load some messages first")
    totals = conn.run(
        "SELECT count(*), count(DISTINCT user_id), count(DISTINCT masked_device_id),"  # noqa: S608
        f" count(DISTINCT masked_ip), count(*) FILTER (WHERE locale IS NULL) FROM {TABLE}"
    )[0]
    report = Report(*totals)
    for column, target in (
        ("masked_device_id", report.duplicate_devices),
        ("masked_ip", report.duplicate_ips),
    ):
        target.extend(
            conn.run(
                f"SELECT {column}, count(*), count(DISTINCT user_id) FROM {TABLE}"  # noqa: S608
                f" GROUP BY {column} HAVING count(*) > 1 ORDER BY count(*) DESC, {column}"
                " LIMIT :top",
                top=top,
            )
        )
    report.per_day.extend(
        conn.run(f"SELECT create_date, count(*) FROM {TABLE} GROUP BY 1 ORDER BY 1")  # noqa: S608
    )
    report.per_version.extend(
        conn.run(
            f"SELECT {SQL_DECODE_EXPRESSION}, count(*) FROM {TABLE}"  # noqa: S608
            " GROUP BY app_version ORDER BY count(*) DESC, app_version DESC LIMIT :top",
            top=top,
        )
    )
    report.per_device_type.extend(
        conn.run(f"SELECT device_type, count(*) FROM {TABLE} GROUP BY 1 ORDER BY 2 DESC")  # noqa: S608
    )
    # A token's first 12 characters are its version and key id (masking.token_prefix).
    per_prefix = conn.run(
        "SELECT min(COALESCE(masked_device_id, masked_ip)), count(*) FROM"  # noqa: S608
        f" {TABLE} WHERE COALESCE(masked_device_id, masked_ip) IS NOT NULL"
        " GROUP BY left(COALESCE(masked_device_id, masked_ip), 12) ORDER BY 2 DESC"
    )
    report.per_key.extend((_key_id(token), rows) for token, rows in per_prefix)
    return report


def _key_id(token: str) -> int:
    try:
        return token_key_id(token)
    except ValueError:  # not a token of ours (a row written by hand, say)
        return -1


def render(report: Report, *, full_tokens: bool = False) -> str:
    """The report as text for the terminal; tokens shortened unless ``full_tokens``."""
    lines = [
        f"rows                {report.rows:>8}",
        f"distinct users      {report.users:>8}",
        f"distinct devices    {report.devices:>8}   (distinct masked_device_id)",
        f"distinct IPs        {report.ips:>8}   (distinct masked_ip)",
        f"NULL locales        {report.null_locales:>8}",
    ]
    for title, groups in (
        ("devices seen in more than one login", report.duplicate_devices),
        ("IPs seen in more than one login", report.duplicate_ips),
    ):
        lines += ["", f"{title} (top {len(groups)})"]
        lines += [
            f"  {rows:>6} logins, {users:>4} users  {token if full_tokens else token[:32] + '...'}"
            for token, rows, users in groups
        ]
    lines += ["", "logins per day"]
    lines += [f"  {day}  {count:>8}" for day, count in report.per_day]
    lines += ["", "top app versions"]
    lines += [f"  {version:<12} {count:>8}" for version, count in report.per_version]
    lines += ["", "device types"]
    lines += [f"  {kind:<12} {count:>8}" for kind, count in report.per_device_type]
    lines += ["", "rows by data key"]
    lines += [
        f"  {'not a token' if key_id < 0 else f'{key_id:08x}':<12} {count:>8}"
        for key_id, count in report.per_key
    ]
    if len(report.per_key) > 1:
        lines += [
            f"  rows are under {len(report.per_key)} keys: equal values under two keys have two"
            " tokens, so duplicates do not match across them.",
            "  `login-etl rekey` (the database admin) brings them under the current key.",
        ]
    return "\n".join(lines)
