"""Strict parsing of a login message body into a ``LoginEvent``.

Every rule is explicit: the exact key set, the JSON type of each value, the column length
limits (rejected, never truncated), the IP syntax, the app_version grammar. Errors name the
field and the rule but never echo the value, because values are PII.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

from login_etl.domain import app_version
from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.masking import max_plaintext_bytes
from login_etl.domain.models import LoginEvent, new_tuple

REQUIRED_KEYS = frozenset({"user_id", "app_version", "device_type", "ip", "locale", "device_id"})
NULLABLE_KEYS = frozenset({"locale"})

# Column limits of the given DDL (varchar counts characters).
MAX_CHARS = {"user_id": 128, "device_type": 32, "locale": 32}
MASKED_COLUMN_CHARS = 256
# The device id is masked into varchar(256): the longest plaintext whose token still fits.
MAX_DEVICE_ID_BYTES = max_plaintext_bytes(MASKED_COLUMN_CHARS)
MAX_IP_CHARS = 45  # the longest textual IPv6 form, IPv4-mapped tail included
MAX_APP_VERSION_CHARS = 11

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_SAFE_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)


# The body as producers write it: the six keys in the order of the original queue, the
# separators of json.dumps (or none), strings of printable ASCII with no escape, a canonical
# IPv4 address, every length within its rule. One regex reads and checks such a body at once,
# in far fewer instructions than the C scanner and the checks after it (docs/instructions.md,
# "Validation"). A body it does not match whole takes the scanner and the rules below,
# unchanged; a property test holds the two equal.
_PLAIN = r'"([ !#-\[\]-~]{1,%d})"'  # a JSON string with no escape: printable ASCII, no " or \
_SEPARATOR, _COLON = ", ?", ": ?"


def _field(key: str, value: str) -> str:
    return f'"{key}"{_COLON}{value}'


_USUAL_BODY = re.compile(
    "\\{"
    + _SEPARATOR.join(
        [
            _field("user_id", _PLAIN % MAX_CHARS["user_id"]),
            _field("app_version", _PLAIN % MAX_APP_VERSION_CHARS),
            _field("device_type", _PLAIN % MAX_CHARS["device_type"]),
            _field("ip", f'"({_CANONICAL_IPV4.pattern})"'),
            _field("locale", f"(?:{_PLAIN % MAX_CHARS['locale']}|null)"),
            _field("device_id", _PLAIN % MAX_DEVICE_ID_BYTES),
        ]
    )
    + "\\}"
).fullmatch

# The C scanner behind json.loads, called directly for a body that starts with "{": loads()
# and decode() around it add Python frames that such a body does not need
# (docs/instructions.md, "Validation"). Anything else, and any body the scanner does not
# consume whole, goes through json.loads for its exact rules and errors.
# (typeshed does not declare the attribute JSONDecoder sets in __init__.)
_scan_object: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
# Encoded app versions seen so far: a stream has few distinct versions, and a lookup costs far
# less than the regex and the three int() (docs/instructions.md, "Validation"). Bounded:
# values are inputs.
_KNOWN_VERSIONS: dict[str, int] = {}
_KNOWN_VERSIONS_MAX = 4_096
# The limits as plain names for the inline checks (a dict lookup each, otherwise).
_KEY_COUNT = len(REQUIRED_KEYS)
_MAX_USER_ID, _MAX_DEVICE_TYPE, _MAX_LOCALE = (
    MAX_CHARS[k] for k in ("user_id", "device_type", "locale")
)


def parse_login(body: str) -> LoginEvent:
    """Parse and validate one message body; raise ``InvalidMessageError`` if it is not a login.

    The usual body is ASCII with no backslash, so none of its strings can hold a NUL, another
    control character or an unpaired surrogate (JSON spells those only as escapes): such a
    login only needs types, lengths, the IP and the version checked, inline (the full rules
    were most of parsing's cost; docs/instructions.md, "Validation"). Everything
    else, and every failure, takes the full rules (``_checked_login``), which give the error.
    A property test holds the two equal. The body as producers write it is read before that,
    by one regex (``_USUAL_BODY``).
    """
    usual = _USUAL_BODY(body)
    if usual is not None:
        user_id, version, device_type, ip, locale, device_id = usual.groups()
        number = _KNOWN_VERSIONS.get(version)
        if number is None:
            number = _app_version(version)  # the rule the full path ends with, and its error
        return new_tuple(LoginEvent, (user_id, device_type, ip, locale, number, device_id))
    payload = _json(body)
    # Six keys, all six found: the key set is right (cheaper than comparing the key view with
    # REQUIRED_KEYS). A missing one means another is there instead.
    if type(payload) is dict and len(payload) == _KEY_COUNT and body.isascii():
        try:
            user_id = payload["user_id"]
            device_type = payload["device_type"]
            ip = payload["ip"]
            locale = payload["locale"]
            version = payload["app_version"]
            device_id = payload["device_id"]
        except KeyError:
            return _checked_login(payload)
        if (
            "\\" not in body
            and type(user_id) is str
            and 0 < len(user_id) <= _MAX_USER_ID
            and type(device_type) is str
            and 0 < len(device_type) <= _MAX_DEVICE_TYPE
            and type(device_id) is str
            and 0 < len(device_id) <= MAX_DEVICE_ID_BYTES  # ASCII: one byte a character
            and (locale is None or (type(locale) is str and 0 < len(locale) <= _MAX_LOCALE))
            and type(ip) is str
            and _CANONICAL_IPV4.fullmatch(ip) is not None
            and type(version) is str
            and (number := _KNOWN_VERSIONS.get(version)) is not None
        ):
            return new_tuple(LoginEvent, (user_id, device_type, ip, locale, number, device_id))
    return _checked_login(payload)


def _json(body: str) -> Any:
    try:
        if body[:1] == "{":
            payload, end = _scan_object(body, 0)
            if end == len(body):
                return payload
        return json.loads(body)
    # scan_once raises StopIteration for a value it cannot read ('{"a": x}'): json.loads turns
    # it into a ValueError, but here it would escape, fail the whole batch, and dead-letter
    # every message of it.
    except (ValueError, RecursionError, StopIteration):
        raise InvalidMessageError(Reason.NOT_JSON, "body is not valid JSON") from None


def _checked_login(payload: Any) -> LoginEvent:
    """Every rule, in order, with the error that names the first one broken."""
    if not isinstance(payload, dict):
        raise InvalidMessageError(Reason.NOT_AN_OBJECT, "body is not a JSON object")
    _check_keys(payload)
    for key in REQUIRED_KEYS:
        value = payload[key]
        # Inline fast path for the usual non-empty ASCII string; the full check otherwise.
        if type(value) is not str or not value or not value.isascii() or "\x00" in value:
            _check_string(key, value)
    locale = payload["locale"]
    if locale is not None and len(locale) > MAX_CHARS["locale"]:
        raise _too_long("locale", MAX_CHARS["locale"])
    for key in ("user_id", "device_type"):
        if len(payload[key]) > MAX_CHARS[key]:
            raise _too_long(key, MAX_CHARS[key])
    device_id: str = payload["device_id"]
    if len(device_id.encode("utf-8")) > MAX_DEVICE_ID_BYTES:
        raise InvalidMessageError(
            Reason.TOO_LONG, f"device_id longer than {MAX_DEVICE_ID_BYTES} UTF-8 bytes"
        )
    return LoginEvent(
        user_id=payload["user_id"],
        device_type=payload["device_type"],
        ip=canonical_ip(payload["ip"]),
        locale=locale,
        app_version=_app_version(payload["app_version"]),
        device_id=device_id,
    )


def canonical_ip(text: str) -> str:
    """One textual form per address: compressed lower-case IPv6, IPv4-mapped IPv6 as IPv4."""
    if _is_canonical_ipv4(text):
        return text
    if len(text) > MAX_IP_CHARS:
        raise InvalidMessageError(Reason.INVALID_IP, "ip is not an IPv4 or IPv6 address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidMessageError(Reason.INVALID_IP, "ip is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise InvalidMessageError(Reason.INVALID_IP, "ip has an IPv6 zone id")
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


def _is_canonical_ipv4(text: str) -> bool:
    """Dotted decimal with no leading zeros: what ``ipaddress`` accepts and prints unchanged.

    A fast path (``ipaddress`` was the largest part of validation; docs/instructions.md,
    "Validation"); anything else goes through ``ipaddress``. A property test holds them equal.
    """
    return _CANONICAL_IPV4.fullmatch(text) is not None


def _app_version(value: str) -> int:
    if len(value) > MAX_APP_VERSION_CHARS:
        raise InvalidMessageError(Reason.INVALID_APP_VERSION, "app_version is too long")
    try:
        number = app_version.encode(value)
    except app_version.InvalidAppVersionError as error:
        raise InvalidMessageError(Reason.INVALID_APP_VERSION, str(error)) from None
    if len(_KNOWN_VERSIONS) < _KNOWN_VERSIONS_MAX:
        _KNOWN_VERSIONS[value] = number
    return number


def _check_keys(payload: dict[str, Any]) -> None:
    keys = payload.keys()
    if keys == REQUIRED_KEYS:
        return
    missing = REQUIRED_KEYS - keys
    if missing:
        raise InvalidMessageError(Reason.MISSING_KEYS, f"missing keys: {key_names(missing)}")
    raise InvalidMessageError(
        Reason.UNEXPECTED_KEYS, f"unexpected keys: {key_names(keys - REQUIRED_KEYS)}"
    )


def _check_string(key: str, value: object) -> None:
    if value is None and key in NULLABLE_KEYS:
        return
    if not isinstance(value, str):
        expected = "a string or null" if key in NULLABLE_KEYS else "a string"
        raise InvalidMessageError(
            Reason.WRONG_TYPE, f"{key} must be {expected}, got {json_type(value)}"
        )
    if not value:
        raise InvalidMessageError(Reason.EMPTY_VALUE, f"{key} is empty")
    if "\x00" in value:
        raise InvalidMessageError(Reason.BAD_CHARACTERS, f"{key} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMessageError(
                Reason.BAD_CHARACTERS, f"{key} contains an unpaired surrogate"
            ) from None


def _too_long(key: str, limit: int) -> InvalidMessageError:
    return InvalidMessageError(Reason.TOO_LONG, f"{key} longer than {limit} characters")


def key_names(keys: frozenset[str] | set[str] | Any) -> str:
    """Key names are data too: show only the ones that look like identifiers."""
    shown = sorted(k if _SAFE_KEY_NAME.fullmatch(k) else "<non-identifier key>" for k in keys)
    return ", ".join(shown)


def json_type(value: object) -> str:
    """The JSON type of a value, the only thing said about a value that is not a string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
