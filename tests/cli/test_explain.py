"""The CLI's explanation of an exception: one line, in words, never a value or a raw dict."""

from __future__ import annotations

import pg8000.exceptions
import pytest

from login_etl_cli.errors import explain


def postgres_error(code: str, message: str) -> pg8000.exceptions.DatabaseError:
    """What pg8000 raises: the server's fields as a dict."""
    return pg8000.exceptions.DatabaseError({"S": "ERROR", "V": "ERROR", "C": code, "M": message})


@pytest.fixture(autouse=True)
def database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://ops:s3cret@db.example:5432/logins")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            postgres_error("42P01", 'relation "user_logins" does not exist'),
            "Postgres at postgresql://ops:***@db.example:5432/logins refused: relation"
            ' "user_logins" does not exist: nothing has been loaded into this database yet'
            " (`login-etl run`), or its schema was never created (`login-etl db init`), or"
            " DATABASE_URL names another database",
        ),
        (
            postgres_error("53300", "sorry, too many clients already"),
            "Postgres at postgresql://ops:***@db.example:5432/logins refused: no connection slot"
            " left (max_connections is reached): close idle sessions (pg_stat_activity) or raise"
            " max_connections",
        ),
        (
            postgres_error("22P02", 'invalid input syntax for type integer: "199.172.111.135"'),
            "Postgres at postgresql://ops:***@db.example:5432/logins refused a value"
            " (SQLSTATE 22P02)",
        ),
        (
            postgres_error("XX000", "something internal"),
            "Postgres at postgresql://ops:***@db.example:5432/logins refused: something internal"
            " (SQLSTATE XX000)",
        ),
        (FileNotFoundError(2, "No such file or directory", "logins.json"), None),
        (IsADirectoryError(21, "Is a directory", "events"), "Is a directory: events"),
        (RuntimeError("initdb failed: no space\nline two\nline three"), None),
    ],
)
def test_one_worded_line(error: Exception, expected: str | None) -> None:
    text = explain(error)

    assert "\n" not in text
    assert "{'S'" not in text  # never pg8000's raw dict
    assert "s3cret" not in text
    assert "199.172.111.135" not in text  # a data error's message can quote a value
    if expected is not None:
        assert text == expected
    if isinstance(error, FileNotFoundError):
        assert text == "No such file or directory: logins.json"  # not "cannot reach Postgres"
    if isinstance(error, RuntimeError):
        assert text == ("RuntimeError: initdb failed: no space (more with --debug)")
