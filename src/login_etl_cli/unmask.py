"""``login-etl unmask``: recover masked values, each failure reported on its own.

Values come from the command line, stdin, or the table (rows selected by ``--where
column=value`` filters: the column is checked against the table's columns, the value is
always a bound parameter, never formatted into SQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from login_etl.adapters.postgres.schema import COLUMNS, TABLE, table_exists
from login_etl.domain.app_version import InvalidAppVersionError, decode, encode
from login_etl.domain.keyring import Keyring, UnmaskError

if TYPE_CHECKING:
    import pg8000.native

MASKED_COLUMNS = ("masked_ip", "masked_device_id")
FILTER_COLUMNS = tuple(c for c in COLUMNS if c not in MASKED_COLUMNS)


@dataclass(frozen=True, slots=True)
class Unmasked:
    """One token, and its value or why there is none."""

    token: str
    value: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """A line of output."""
        if self.error is not None:
            return {"token": self.token, "error": self.error}
        return {"token": self.token, "value": self.value}


def unmask_all(keyring: Keyring, tokens: Iterable[str]) -> list[Unmasked]:
    """Every token tried; a bad one does not stop the others."""
    results = []
    for token in tokens:
        try:
            results.append(Unmasked(token, value=keyring.unmask(token)))
        except UnmaskError as error:
            results.append(Unmasked(token, error=str(error)))
    return results


def parse_filters(specs: Iterable[str]) -> dict[str, str]:
    """``["user_id=abc", "locale=RU"]`` -> ``{"user_id": "abc", "locale": "RU"}``, checked."""
    filters: dict[str, str] = {}
    for spec in specs:
        filters.update([parse_filter(spec)])
    return filters


def parse_filter(spec: str) -> tuple[str, str]:
    """``"user_id=abc"`` -> ``("user_id", "abc")``; ``ValueError`` saying what is allowed.

    ``app_version`` is given as ``report`` shows it (``2.3.0``) or as stored (``2003000``).
    A masked column cannot be matched: its values are what ``unmask`` recovers.
    """
    column, sep, value = spec.partition("=")
    column = column.strip()
    if sep and column in (*MASKED_COLUMNS, "ip", "device_id"):
        raise ValueError(
            f"--where {column}=...: {column.removeprefix('masked_')} is masked, it cannot be"
            f" matched; filter by {', '.join(FILTER_COLUMNS)}"
        )
    if not sep or column not in FILTER_COLUMNS:
        raise ValueError(
            f"--where takes column=value with a column among {', '.join(FILTER_COLUMNS)}"
        )
    if column == "app_version" and "." in value:
        try:
            value = str(encode(value))
        except InvalidAppVersionError:
            raise ValueError(f"--where app_version: not a version: {value!r}") from None
    return column, value


def select_rows(
    conn: pg8000.native.Connection, filters: Mapping[str, str], limit: int
) -> list[dict[str, Any]]:
    """The rows matching every filter (AND), oldest first, at most ``limit``."""
    if not table_exists(conn, TABLE):
        raise LookupError(f"there is no {TABLE} table in this database: check DATABASE_URL")
    # Column names come from FILTER_COLUMNS only (checked above); values are parameters.
    conditions = [f"{column}::text = :p{i}" for i, column in enumerate(filters)]
    where = " AND ".join(conditions) or "TRUE"
    parameters = {f"p{i}": value for i, value in enumerate(filters.values())}
    columns = ", ".join(COLUMNS)
    rows = conn.run(
        f"SELECT {columns} FROM {TABLE} WHERE {where} ORDER BY create_date LIMIT :limit",  # noqa: S608
        limit=limit,
        **parameters,
    )
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def unmask_rows(keyring: Keyring, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row with ``ip`` and ``device_id`` recovered (or an error per column)."""
    out = []
    for row in rows:
        line: dict[str, Any] = {k: _shown(k, v) for k, v in row.items() if k not in MASKED_COLUMNS}
        errors = {}
        for column in MASKED_COLUMNS:
            name = column.removeprefix("masked_")
            token = row[column]
            if token is None:
                line[name] = None
                continue
            try:
                line[name] = keyring.unmask(token)
            except UnmaskError as error:
                line[name] = None
                errors[name] = str(error)
        if errors:
            line["errors"] = errors
        out.append(line)
    return out


def _shown(column: str, value: Any) -> Any:
    """A column's value as ``report`` shows it: dates in ISO form, versions dotted."""
    if isinstance(value, date):
        return value.isoformat()
    if column == "app_version" and isinstance(value, int):
        try:
            return decode(value)
        except InvalidAppVersionError:
            return value  # out of the encoding's range: shown as stored
    return value
