"""No transaction of the function outlives its invocation: a frozen function, a stopped server.

A Lambda environment can be frozen (or partitioned from the database) in the middle of a write;
the server then ends its transaction at the invocation's deadline, and a retry from another
container gets the batch's ledger locks. A server that stops answering makes the invocation
fail before Lambda's kill, so the whole batch is retried cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres import store as store_module
from login_etl.adapters.postgres.connection import END_BACKEND_TIMEOUT_S, connect
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.adapters.postgres.transaction import IDLE_LIMIT_S
from login_etl.deadline import DEADLINE_MARGIN_MS, Deadline
from login_etl.handler import lambda_handler
from login_etl.runtime import reset_runtime
from login_etl_cli.sample_data import generate
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from tests.postgres_helpers import count, function_sessions, ledger, params, row, wait_for
from tests.sqs_helpers import receive_event

BATCH = 200
SLOW_COPY_S = 1.5
MARGIN_S = DEADLINE_MARGIN_MS / 1000
HOUR_S = 3600
# The child's cold start (imports, KMS, the schema) must fit well inside it on a busy machine.
FROZEN_TIMEOUT_S = 30.0
INVOKE = """
import json, sys
from login_etl.handler import lambda_handler
from login_etl_local.event_source_mapping import LocalContext
event = json.loads(open(sys.argv[1]).read())
print(json.dumps(lambda_handler(event, LocalContext(timeout_s=float(sys.argv[2])))))
"""


@pytest.fixture
def slow_first_copy(tables: pg8000.native.Connection) -> pg8000.native.Connection:
    """The first COPY into the ledger takes SLOW_COPY_S on the server (a slow disk, a lock
    released late); later ones do not. The ledger's, the first statement of the batch's
    message: a function frozen there has sent everything else already. A sequence, because it
    is not rolled back."""
    db = tables
    # A fresh one each test: the tables are dropped between tests, a sequence is not.
    db.run("DROP SEQUENCE IF EXISTS slow_once")
    db.run("CREATE SEQUENCE slow_once")
    db.run(
        "CREATE OR REPLACE FUNCTION slow_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF nextval('slow_once') = 1 THEN PERFORM pg_sleep({SLOW_COPY_S}); END IF;"
        " RETURN NULL; END $$"
    )
    db.run(
        "CREATE TRIGGER slow_once AFTER INSERT ON login_etl_processed_messages"
        " FOR EACH STATEMENT EXECUTE FUNCTION slow_once()"
    )
    return db


@pytest.fixture
def event(queue: Provisioned) -> dict[str, Any]:
    send_bodies(boto3.client("sqs"), queue.queue_url, generate(BATCH, 31, malformed_ratio=0))
    return receive_event(queue, BATCH)


def copying_backend(db: pg8000.native.Connection) -> int | None:
    """The server process of the function's ledger COPY, while it runs."""
    rows = db.run(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'login-etl'"
        " AND pid <> pg_backend_pid() AND state = 'active'"
        " AND query LIKE '%COPY login_etl_processed_messages %'"
    )
    return int(rows[0][0]) if rows else None


@pytest.fixture
def frozen_function(
    slow_first_copy: pg8000.native.Connection, event: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], float, float]]:
    """A function invoked in a process of its own, frozen (SIGSTOP) in the middle of its COPY;
    with the time it was started (its deadline is FROZEN_TIMEOUT_S after that, at the latest)
    and the time it was frozen."""
    db = slow_first_copy
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", INVOKE, str(path), str(FROZEN_TIMEOUT_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: copying_backend(db) is not None or child.poll() is not None,
            "the function's COPY runs",
            timeout_s=FROZEN_TIMEOUT_S,
        )
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGSTOP)
        yield child, started, time.monotonic()
    finally:
        child.kill()
        child.communicate()


def test_a_function_frozen_mid_write_holds_no_lock_past_its_deadline(
    frozen_function: tuple[subprocess.Popen[str], float, float],
    slow_first_copy: pg8000.native.Connection,
    event: dict[str, Any],
) -> None:
    """The batch's whole transaction went out in one message before the function froze: the
    server ends it without the client, and a retry from another container, within the
    deadline and well within the idle limit, finds every row written: once, none lost."""
    db = slow_first_copy
    _, started, frozen = frozen_function
    reset_runtime()  # this process is the other container

    response = lambda_handler(event, LocalContext(timeout_s=120))

    retried = time.monotonic()
    assert response == {"batchItemFailures": []}
    assert retried - started <= FROZEN_TIMEOUT_S + MARGIN_S  # by the deadline plus the margin
    # and, whatever the deadline, the server ended the silent session IDLE_LIMIT_S after its
    # COPY ended
    assert retried - frozen <= SLOW_COPY_S + IDLE_LIMIT_S + MARGIN_S
    assert count(db, "SELECT count(*) FROM user_logins") == BATCH
    assert len(ledger(db)) == BATCH


def test_a_server_that_stops_answering_fails_the_invocation_before_its_deadline(
    slow_first_copy: pg8000.native.Connection, event: dict[str, Any]
) -> None:
    """The function's server process is stopped in the middle of the COPY: the invocation
    raises within its time (the whole batch is retried), not after Lambda's kill."""
    db = slow_first_copy
    timeout_s = 12.0  # a slow machine's cold start and the COPY fit in, with time to spare
    stopped: list[int] = []

    def stop_the_server_process() -> None:
        wait_for(lambda: copying_backend(db) is not None, "the function's COPY runs")
        pid = copying_backend(db)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    stopper = threading.Thread(target=stop_the_server_process)
    stopper.start()
    context = LocalContext(timeout_s=timeout_s)
    try:
        with pytest.raises((pg8000.native.InterfaceError, OSError)):
            lambda_handler(event, context)
        assert context.get_remaining_time_in_millis() > 0
    finally:
        stopper.join()
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)  # its termination, asked by the function, then runs
    wait_for(lambda: copying_backend(db) is None, "the stopped session is gone")
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()

    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    assert count(db, "SELECT count(*) FROM user_logins") == BATCH


def deadline_in(remaining_s: float) -> Deadline:
    """An invocation with ``remaining_s`` left now, on the real clock (the server's is real)."""
    ends = time.monotonic() + remaining_s
    return Deadline(lambda: int((ends - time.monotonic()) * 1000))


@pytest.fixture
def slow_ledger_then_stuck_rows(tables: pg8000.native.Connection) -> pg8000.native.Connection:
    """The ledger's COPY takes most of the time left (a slow disk, a lock released late),
    then the rows' COPY waits on something that never ends (a DBA's CREATE INDEX)."""
    db = tables
    for table, sleep_s in (("login_etl_processed_messages", 2.5), ("user_logins", 60)):
        db.run(
            f"CREATE OR REPLACE FUNCTION sleep_{table}() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN PERFORM pg_sleep({sleep_s}); RETURN NULL; END $$"
        )
        db.run(
            f"CREATE TRIGGER sleep_{table} AFTER INSERT ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION sleep_{table}()"
        )
    return db


def test_every_statement_of_a_write_ends_by_the_deadline(
    slow_ledger_then_stuck_rows: pg8000.native.Connection, store: PostgresLoginStore
) -> None:
    """6 s left, so 4 s before the margin: the ledger's statement takes 2.5 s, then the rows'
    may take what is left of the 4 s, not 3.5 s more (past Lambda's kill, holding the ledger's
    locks on the server after it)."""
    remaining_s = 6.0
    deadline = deadline_in(remaining_s)
    started = time.monotonic()

    with pytest.raises(pg8000.native.DatabaseError):
        store.write([(f"m{i}", row(f"u{i}")) for i in range(10)], deadline)

    elapsed_s = time.monotonic() - started
    assert elapsed_s <= remaining_s - MARGIN_S + END_BACKEND_TIMEOUT_S


def test_a_commit_that_never_ends_ends_by_the_deadline_and_commits_nothing(
    tables: pg8000.native.Connection, store: PostgresLoginStore
) -> None:
    """The rows' COPY takes 0.8 s (well within its third of the 5 s before the margin: the
    ledger's COPY, the rows' and the COMMIT share it, and a busy machine must not make it the
    statement timeout's), then its COMMIT, in the same message,
    runs a deferred constraint trigger that never ends. Postgres stops the statement timeout
    before it commits (deferred triggers run unbounded by it, with or without the COMMIT in
    the COPY's message), so the client's read timeout, the time left, ends the wait, and the
    server process is ended from outside: nothing is committed, and the next write goes
    through."""
    db = tables
    db.run(
        "CREATE OR REPLACE FUNCTION slow_copy() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN PERFORM pg_sleep(0.8); RETURN NULL; END $$"
    )
    db.run(
        "CREATE TRIGGER slow_copy AFTER INSERT ON user_logins"
        " FOR EACH STATEMENT EXECUTE FUNCTION slow_copy()"
    )
    db.run(
        "CREATE OR REPLACE FUNCTION stuck_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.user_id = 'stuck' THEN PERFORM pg_sleep(60); END IF; RETURN NULL; END $$"
    )
    db.run(
        "CREATE CONSTRAINT TRIGGER stuck_commit AFTER INSERT ON user_logins"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stuck_commit()"
    )
    remaining_s = MARGIN_S + 5.5
    deadline = deadline_in(remaining_s)
    started = time.monotonic()

    with pytest.raises((TimeoutError, pg8000.native.InterfaceError)):  # no answer in time
        store.write([("m1", row("stuck")), ("m2", row("u2"))], deadline)

    assert time.monotonic() - started <= remaining_s - MARGIN_S + END_BACKEND_TIMEOUT_S
    wait_for(lambda: function_sessions(db) == 0, "the stuck server process is gone")
    assert count(db, "SELECT count(*) FROM user_logins") == 0
    assert ledger(db) == set()
    assert store.write([("m2", row("u2"))]).written == 1


def test_a_prune_waits_on_the_ledgers_lock_no_longer_than_its_time_left(
    tables: pg8000.native.Connection, store: PostgresLoginStore
) -> None:
    """A DBA's VACUUM FULL (ACCESS EXCLUSIVE) of the ledger, for longer than the run has."""
    store.write([("recent", row("u"))])  # the store's connection is open and warm
    holder = connect(params())
    holder.run("START TRANSACTION")
    holder.run("LOCK TABLE login_etl_processed_messages IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(4.0, holder.run, ("COMMIT",))
    release.start()
    remaining_s = 3.0
    started = time.monotonic()
    try:
        with contextlib.suppress(Exception):  # raising before the deadline is fine
            store.prune(HOUR_S, 1_000, lambda: True, deadline_in(remaining_s))
        elapsed_s = time.monotonic() - started
    finally:
        release.join()
        holder.close()
    assert elapsed_s <= remaining_s - MARGIN_S + END_BACKEND_TIMEOUT_S


def test_the_check_of_an_idle_connection_waits_no_longer_than_the_time_left(
    tables: pg8000.native.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stops answering while the container idles (a failover, a partition)."""
    store = PostgresLoginStore(params(connect_timeout_s=4.0))
    try:
        store.write([("first", row("u"))])
        pid = int(
            tables.run(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'login-etl'"
                " AND pid <> pg_backend_pid()"
            )[0][0]
        )
        monkeypatch.setattr(store_module, "IDLE_CHECK_SECONDS", 0.0)  # it idled long enough
        remaining_s = 3.0
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with contextlib.suppress(Exception):  # raising before the deadline is fine
                store.write([("second", row("u"))], deadline_in(remaining_s))
            elapsed_s = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        store.close()
    assert elapsed_s <= remaining_s - MARGIN_S + END_BACKEND_TIMEOUT_S
