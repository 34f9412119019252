"""Dotted app versions <-> the integer stored in `user_logins.app_version`.

The column is an integer, the input a dotted string ("2.3.0", "0.96", "9.10"). Stripping the
dots collides ("0.2.6", "2.6" and "0.26" all give 26), so each part gets its own three decimal
digits: ``major * 1_000_000 + minor * 1_000 + patch``. Integer order equals version order, the
largest value (999.999.999) fits a Postgres ``integer``, and ``decode`` inverts it. Part
strings with leading zeros ("2.00") mean the number they spell, as release tooling reads them.
"""

from __future__ import annotations

import re

MAJOR = 1_000_000
MINOR = 1_000
PART_MAX = 999

_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})(?:\.([0-9]{1,3}))?", re.ASCII)

# The same inverse as SQL, for views and ad-hoc queries (`app_version` is the column).
SQL_DECODE_EXPRESSION = (
    "(app_version / 1000000)::text || '.' || (app_version / 1000 % 1000)::text"
    " || '.' || (app_version % 1000)::text"
)


class InvalidAppVersionError(ValueError):
    """The value is not a dotted version with two or three parts of 0-999."""


def encode(version: str) -> int:
    """Encode "major.minor[.patch]" (each part 0-999) as an order-preserving integer."""
    match = _VERSION.fullmatch(version)
    if match is None:
        raise InvalidAppVersionError(
            "app_version must be 'major.minor' or 'major.minor.patch' with parts of 1-3 digits"
        )
    major, minor, patch = match.groups()
    return int(major) * MAJOR + int(minor) * MINOR + int(patch or 0)


def decode(value: int) -> str:
    """Return the canonical "major.minor.patch" string of an encoded version."""
    if not 0 <= value <= PART_MAX * (MAJOR + MINOR + 1):
        raise InvalidAppVersionError("encoded app_version out of range")
    return f"{value // MAJOR}.{value // MINOR % 1000}.{value % 1000}"
