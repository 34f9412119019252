"""DATABASE_URL parsing: right when the password is percent-encoded, silent about it when not.

The rule for "silent": an error's text is one of the parser's fixed messages, it carries no
chained exception, and no exception message of its chain (what a traceback shows besides
code lines, which are static) contains a substring of 4 or more characters of the password,
except substrings that a fixed message contains anyway.
"""

from __future__ import annotations

import string
import traceback
from urllib.parse import quote, unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from login_etl import config
from login_etl.config import (
    ConfigurationError,
    Settings,
    connection_params_from_url,
    parse_database_url,
)
from login_etl_cli.commands.common import redact

SETTINGS = Settings.from_env({"DATABASE_URL": "-", "DATA_KEY_CIPHERTEXT": "-"})

WINDOW = 4

passwords = st.text(st.sampled_from(string.printable), min_size=1, max_size=40)


def parse(url: str) -> tuple[str, int, str, str, str]:
    """What the handler and the operator commands connect with: host, port, user, password, db."""
    params = connection_params_from_url(url, SETTINGS)
    return params.host, params.port, params.user, params.password, params.database


def windows(secret: str) -> set[str]:
    """Every substring of ``secret`` of length ``WINDOW``."""
    return {secret[i : i + WINDOW] for i in range(len(secret) - WINDOW + 1)}


def leaked(secret: str, error: BaseException) -> set[str]:
    """The password's windows in the messages of the error's chain, not in a fixed message.

    What an error shows is ``format_exception_only`` (its message and notes) after the type's
    name, which is code ("logi" of a password "logi/" is in "login_etl.config...": hypothesis).
    """
    shown = []
    current: BaseException | None = error
    while current is not None:
        kind = type(current)
        text = "".join(traceback.format_exception_only(current))
        shown.append(text.removeprefix(f"{kind.__module__}.{kind.__qualname__}"))
        current = current.__cause__ or current.__context__
    fixed = "\n".join(config.URL_ERRORS)
    return {w for w in windows(secret) if w in "".join(shown) and w not in fixed}


def assert_silent(secret: str, error: ConfigurationError) -> None:
    """The error of a parse says nothing of ``secret`` (the rule in the module docstring)."""
    assert str(error) in config.URL_ERRORS
    assert error.__cause__ is None
    assert error.__suppress_context__  # raised "from None": no chain, wherever it is raised
    assert leaked(secret, error) == set()


@given(passwords)
@example("Sup3rS3cret/x")
@example("p@ss/w#rd?[]")
def test_an_encoded_password_comes_back_exactly(password: str) -> None:
    url = f"postgresql://login:{quote(password, safe='')}@db.example:6432/app"
    assert parse(url) == ("db.example", 6432, "login", password, "app")


@given(passwords)
@example("Sup3rS3cret/x")  # urlsplit: "Port could not be cast to integer value as 'Sup3rS3cret'"
@example("12345/678")  # urlsplit: host "login", port 12345, a connection error names both
@example("ab#cdefgh")
@example("ab?cdefgh")
@example("%zzsecret")
@example("%C3%28secret")  # well-formed escapes, not UTF-8
def test_an_unencoded_password_is_read_right_or_refused_without_a_trace(password: str) -> None:
    url = f"postgresql://login:{password}@db.example:6432/app"
    try:
        parts = parse(url)
    except ConfigurationError as error:
        assert_silent(password, error)
        return
    # Never a host, port, user or database made of pieces of the password.
    assert parts == ("db.example", 6432, "login", unquote(password), "app")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://login:p@ss@db:5432/app", ("db", 5432, "login", "p@ss", "app")),
        ("postgresql://u:Sup3r[S3cr]@db/app", ("db", 5432, "u", "Sup3r[S3cr]", "app")),
        ("postgres://login:pw@[::1]:6432/app", ("::1", 6432, "login", "pw", "app")),
        ("postgresql://u:pw@DB.Ex:/app?ssl#x", ("db.ex", 5432, "u", "pw", "app")),
        ("postgresql://db.example", ("db.example", 5432, "postgres", "", "postgres")),
        ("postgresql://:a:b@db/my%2Fdb", ("db", 5432, "postgres", "a:b", "my/db")),
    ],
)  # fmt: skip
def test_what_parses(url: str, expected: tuple[str, int, str, str, str]) -> None:
    assert parse(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://login:Zq9vKWx7@db/app", "URL_SHAPE"),
        ("login:Zq9vKWx7@db/app", "URL_SHAPE"),
        ("postgresql://login:Zq9vK/Wx7@db/app", "URL_RESERVED"),
        ("postgresql://login:Zq9vKWx7@[::1/app", "URL_HOST"),
        ("postgresql://login:Zq9vKWx7@[::1]x/app", "URL_HOST"),
        ("postgresql://login:Zq9vKWx7@/app", "URL_HOST"),
        ("postgresql://login:Zq9vKWx7@db]/app", "URL_HOST"),
        ("postgresql://login:Zq9vKWx7@db:99999/app", "URL_PORT"),
        ("postgresql://login:Zq9vKWx7@db:0/app", "URL_PORT"),
        ("postgresql://login:Zq9vKWx7@db:Zq9vK/app", "URL_PORT"),
        ("postgresql://login:Zq9v%KWx7@db/app", "URL_ESCAPE"),
        ("postgresql://login:Zq9vKWx7@db/app%FF", "URL_ESCAPE"),
    ],
)
def test_what_is_refused_and_why(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse(url)
    assert str(raised.value) == getattr(config, message)
    assert_silent("Zq9vKWx7", raised.value)


def test_the_message_says_how_to_fix_it() -> None:
    assert "percent-encode" in config.URL_RESERVED
    assert "%2F" in config.URL_RESERVED


def test_settings_repr_hides_the_url() -> None:
    settings = config.Settings.from_env(
        {"DATABASE_URL": "postgresql://login:Zq9vKWx7@db/app", "DATA_KEY_CIPHERTEXT": "x"}
    )
    assert "Zq9vKWx7" not in repr(settings)


# Not here: an all-digit password with the '@' forgotten ("admin:9876/db") parses as host
# "admin", port 9876, and `redact` then shows the password as the port (docs/security.md).
HOSTILE_PASSWORDS = ("S3cr/et?#[x]", "p@ss:w/o#rd", "s3cret", "%zz", "ab%E9cd", "x]y[z")


@pytest.mark.parametrize("password", HOSTILE_PASSWORDS)
@pytest.mark.parametrize(
    "template",
    [
        "postgresql://admin:{p}@db.example:5432/logins",
        "postgresql://admin:{p}/db.example/logins",  # '@' forgotten
        "postgres://admin:{p}@[::1/logins",
        "postgresql://admin:{p}@db.example:99999/logins",
        "mysql://admin:{p}@db.example/logins",
    ],
)
def test_no_fragment_of_a_password_in_a_database_url_error(template: str, password: str) -> None:
    url = template.format(p=password)
    fragments = {password[i : i + 3] for i in range(len(password) - 2)}
    try:
        parts = parse_database_url(url)
    except ConfigurationError as error:
        shown = f"{error!s} {error!r} {error.__cause__!r}"  # what a traceback shows
    else:
        assert parts.host == "db.example", parts  # never a host made of the password
        shown = redact(url)
    assert not {f for f in fragments if f in shown.replace("***", "")}, shown


def test_no_exception_attached_to_a_database_url_error_holds_the_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_database_url("postgresql://admin:Sup3r%E9Secret@db.example/logins")
    attached = [raised.value.__cause__, raised.value.__context__]
    assert not any("Secret" in repr(error) for error in attached), attached
