"""The ledger stays bounded: entries older than the retention window are pruned, in small
transactions, without touching rows, without doubling a redelivery inside the window, and
without getting in the way of writers."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import boto3
import pg8000.native
import pytest

from login_etl.adapters.postgres.schema import PRUNE_LEDGER_PAGES
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings
from login_etl.deadline import Deadline
from login_etl.domain.models import UserLoginRow
from login_etl.handler import lambda_handler
from login_etl.ledger_pruning import PruneStop, prune_ledger
from login_etl.runtime import connection_params, reset_runtime
from login_etl_cli.sample_data import generate
from login_etl_cli.seeding import send_bodies
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.provisioning import Provisioned
from login_etl_local.stack_record import LocalStack, patched_environ
from tests.sqs_helpers import receive_event

HOUR = 3600
ROW = UserLoginRow("u", "ios", "mip", "mdev", "RU", 2_003_000, date(2026, 11, 25))


def count(db: pg8000.native.Connection, table: str) -> int:
    return int(db.run(f"SELECT count(*) FROM {table}")[0][0])


def age_everything(db: pg8000.native.Connection, seconds: int) -> None:
    """Time passes for the ledger: every entry becomes ``seconds`` older."""
    db.run(
        "UPDATE login_etl_processed_messages"
        " SET processed_at = processed_at - make_interval(secs => :s)",
        s=seconds,
    )


def always() -> bool:
    return True


@pytest.fixture
def store(db: pg8000.native.Connection) -> Iterator[PostgresLoginStore]:
    made = PostgresLoginStore(connection_params(Settings.from_env()))
    yield made
    made.close()


def test_pruning_deletes_only_entries_older_than_the_window(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    store.write([(f"old{i}", ROW) for i in range(1_234)])
    age_everything(db, 3 * HOUR)
    store.write([(f"new{i}", ROW) for i in range(10)])

    deleted = store.prune(2 * HOUR, batch_rows=100, keep_going=always)

    assert deleted == 1_234
    remaining = {r[0] for r in db.run("SELECT message_id FROM login_etl_processed_messages")}
    assert remaining == {f"new{i}" for i in range(10)}
    assert count(db, "user_logins") == 1_244  # the rows themselves are never touched


def test_the_ledger_stays_flat_over_many_windows_and_nothing_is_doubled(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """30 simulated hours, a 3-hour window, pruning every hour: each batch is delivered once
    more an hour later (inside the window, so it is skipped). The ledger holds about three
    hours of entries however long the run."""
    batch = 200
    sizes = []
    written = duplicates = 0
    for hour in range(30):
        fresh = [(f"h{hour}-{i}", ROW) for i in range(batch)]
        again = [(f"h{hour - 1}-{i}", ROW) for i in range(batch)] if hour else []
        result = store.write(fresh + again)
        written += result.written
        duplicates += result.duplicates
        age_everything(db, HOUR)
        summary = prune_ledger(store, 3 * HOUR, 50, Deadline(lambda: 60_000, margin_ms=1_000))
        assert summary.stopped_because is PruneStop.DONE
        sizes.append(count(db, "login_etl_processed_messages"))

    assert written == 30 * batch
    assert duplicates == 29 * batch
    assert count(db, "user_logins") == 30 * batch
    assert max(sizes[3:]) == min(sizes[3:]) == 2 * batch  # flat: entries younger than 3 h


def test_pruning_stops_when_told_and_the_next_run_goes_on_from_there(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    store.write([("recent", ROW)])  # creates the tables
    db.run("TRUNCATE login_etl_processed_messages")
    db.run(
        "INSERT INTO login_etl_processed_messages (message_id, processed_at)"
        " SELECT 'm' || g, now() - interval '3 hours' FROM generate_series(1, 500) g"
    )
    db.run("ANALYZE login_etl_processed_messages")  # about 100 entries a step: a page or so
    two_steps = iter([True, True, False])

    first = store.prune(HOUR, 100, lambda: next(two_steps))
    rest = store.prune(HOUR, 100, always)

    assert 0 < first < 500
    assert first + rest == 500
    assert count(db, "login_etl_processed_messages") == 0


def test_a_run_reports_that_time_ran_short() -> None:
    class Pruner:
        def prune(
            self,
            retention_s: float,
            batch_rows: int,
            keep_going: Callable[[], bool],
            deadline: Deadline | None = None,
        ) -> int:
            steps = 0
            while keep_going():
                steps += 1
            return steps * batch_rows

    clock = iter([60_000, 60_000, 500])  # two steps, then under the margin

    summary = prune_ledger(Pruner(), HOUR, 100, Deadline(lambda: next(clock), margin_ms=1_000))

    assert (summary.deleted, summary.stopped_because) == (200, PruneStop.TIME_LIMIT)


def fill_ledger(db: pg8000.native.Connection, old: int, new: int) -> None:
    """``old`` entries past any window, then ``new`` ones put where old ones were freed: the
    heap's head holds new entries, the old ones are behind them (a ledger after prunes)."""
    db.run("TRUNCATE login_etl_processed_messages")
    db.run(
        "INSERT INTO login_etl_processed_messages (message_id, processed_at)"
        " SELECT 'gone-' || lpad(g::text, 8, '0'), now() - interval '100 days'"
        " FROM generate_series(1, :n) g",
        n=new + old,
    )
    db.run(
        "DELETE FROM login_etl_processed_messages WHERE message_id <= 'gone-' || lpad(:n, 8, '0')",
        n=str(new),
    )
    db.run("VACUUM login_etl_processed_messages")  # the head's space is free again
    db.run(
        "INSERT INTO login_etl_processed_messages (message_id)"
        " SELECT 'kept-' || g FROM generate_series(1, :n) g",
        n=new,
    )
    db.run("ANALYZE login_etl_processed_messages")


def test_a_run_deletes_old_entries_behind_new_ones(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    store.write([("recent", ROW)])  # creates the tables
    fill_ledger(db, old=20_000, new=20_000)
    head = db.run("SELECT message_id FROM login_etl_processed_messages WHERE ctid = '(0,1)'")
    assert head[0][0].startswith("kept-")  # the new entries really are first

    deleted = store.prune(HOUR, 1_000, always)

    assert deleted == 20_000
    assert count(db, "login_etl_processed_messages") == 20_000


def test_each_prune_step_reads_only_its_own_pages(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """A step's cost does not grow with the ledger: a TID range scan of its pages, whatever
    the ledger's size and wherever its old entries are."""
    store.write([("recent", ROW)])
    fill_ledger(db, old=20_000, new=20_000)
    db.run("START TRANSACTION")
    try:
        plan = db.run(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + PRUNE_LEDGER_PAGES,
            first=100,
            after=110,
            retention_s=HOUR,
        )[0][0][0]["Plan"]
    finally:
        db.run("ROLLBACK")
    scan = plan["Plans"][0]
    assert scan["Node Type"] == "Tid Range Scan"
    assert scan["Shared Hit Blocks"] + scan["Shared Read Blocks"] <= 10


def test_writers_go_on_while_the_ledger_is_pruned(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """A writer commits batches the whole time a large prune runs: none fails or waits out."""
    store.write([("recent", ROW)])  # creates the tables; not old enough to go
    db.run(
        "INSERT INTO login_etl_processed_messages"
        " SELECT 'bulk' || g, now() - interval '3 hours' FROM generate_series(1, 200000) g"
    )
    pruning = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []
    committed = []

    def writer() -> None:
        own = PostgresLoginStore(connection_params(Settings.from_env()))
        try:
            pruning.wait(timeout=60)
            round_ = 0
            while not done.is_set() or round_ < 3:
                result = own.write([(f"w{round_}-{i}", ROW) for i in range(500)])
                committed.append(result.written)
                round_ += 1
        except BaseException as error:
            errors.append(error)
        finally:
            own.close()

    thread = threading.Thread(target=writer)
    thread.start()

    def keep_going() -> bool:
        pruning.set()
        return True

    deleted = store.prune(2 * HOUR, batch_rows=5_000, keep_going=keep_going)
    done.set()
    thread.join(timeout=300)

    assert errors == []
    assert deleted == 200_000
    assert len(committed) >= 3
    assert all(n == 500 for n in committed)
    assert count(db, "login_etl_processed_messages") == 1 + 500 * len(committed)


def test_login_etl_ledger_prune(
    stack: LocalStack, store: PostgresLoginStore, db: pg8000.native.Connection, tmp_path: Path
) -> None:
    store.write([(f"m{i}", ROW) for i in range(30)])
    age_everything(db, 50 * 86_400)  # older than the default window (29 days)
    store.write([("recent", ROW)])
    env = {**os.environ, "DATABASE_URL": stack.database_url}

    pruned = subprocess.run(
        [sys.executable, "-m", "login_etl_cli", "ledger", "prune"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )

    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.strip() == "deleted 30 ledger entries older than 29 days"
    assert count(db, "login_etl_processed_messages") == 1


@pytest.fixture
def short_retention_settings(queue: Provisioned) -> Iterator[None]:
    """Settings that say the queues keep messages a minute, against the queue's real days."""
    retention = {
        "QUEUE_RETENTION_SECONDS": "60",
        "DLQ_RETENTION_SECONDS": "60",
        "LEDGER_RETENTION_MARGIN_SECONDS": "0",
    }
    with patched_environ(retention):
        reset_runtime()
        yield
    reset_runtime()


def test_the_window_follows_queues_that_keep_messages_longer_than_the_settings_say(
    queue: Provisioned,
    db: pg8000.native.Connection,
    short_retention_settings: None,
    function_logs: io.StringIO,
) -> None:
    """Settings drifted (or the queues are not this template's): an entry ten minutes old is
    past the settings' window, well inside the queues'. The prune keeps it, says so, and the
    redelivery that can still come is recognised."""
    send_bodies(boto3.client("sqs"), queue.queue_url, generate(1, 41, malformed_ratio=0))
    event = receive_event(queue, 1)
    assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
    age_everything(db, 600)

    summary = lambda_handler({"action": "prune-ledger"}, LocalContext())
    again = lambda_handler(event, LocalContext())  # the queue redelivers it

    real = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue.queue_url, AttributeNames=["MessageRetentionPeriod"]
    )["Attributes"]["MessageRetentionPeriod"]
    assert summary["deleted"] == 0
    assert summary["retentionSeconds"] > int(real) > 600
    assert again == {"batchItemFailures": []}
    assert count(db, "user_logins") == 1
    logged = [json.loads(line) for line in function_logs.getvalue().splitlines()]
    assert any("shorter than the queues keep" in line["message"] for line in logged)


def test_the_settings_window_holds_when_the_queues_cannot_be_read(
    db: pg8000.native.Connection, short_retention_settings: None, function_logs: io.StringIO
) -> None:
    """No QUEUE_URL: the settings are all there is, and the log says the window is unchecked."""
    with patched_environ({"QUEUE_URL": ""}):
        reset_runtime()
        summary = lambda_handler({"action": "prune-ledger"}, LocalContext())
    assert summary["retentionSeconds"] == 120
    assert "queues unread" in function_logs.getvalue()


def steps(allowed: int) -> Callable[[], bool]:
    """A run's ``keep_going`` with time for ``allowed`` steps (an invocation's time running
    short on a ledger too large for one run)."""
    left = itertools.count(allowed, -1)
    return lambda: next(left) > 0


def test_runs_cut_short_by_time_reach_the_end_of_the_ledger_in_turn(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """Each run walks two steps, then its time is up; each is a container of its own (the
    hourly rule lands anywhere). Enough runs to walk the whole ledger once prune all of it."""
    store.write([("recent", ROW)])  # creates the tables
    fill_ledger(db, old=20_000, new=0)
    pages, per_page = db.run(
        "SELECT relpages, reltuples / relpages FROM pg_class"
        " WHERE relname = 'login_etl_processed_messages'"
    )[0]
    per_run = 2 * max(1, int(1_000 / per_page))  # two steps of about 1,000 entries' pages
    for _ in range(pages // per_run + 2):
        run = PostgresLoginStore(connection_params(Settings.from_env()))
        try:
            run.prune(HOUR, 1_000, steps(2))
        finally:
            run.close()

    assert count(db, "login_etl_processed_messages") == 0


def test_a_step_on_a_ledger_never_analyzed_deletes_about_batch_rows(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """After a restore, or with autovacuum off, Postgres has no statistics of the ledger."""
    store.write([("recent", ROW)])
    db.run("DROP TABLE login_etl_processed_messages")
    db.run(
        "CREATE TABLE login_etl_processed_messages(message_id varchar(128) PRIMARY KEY,"
        " processed_at timestamptz NOT NULL DEFAULT now()) WITH (autovacuum_enabled = false)"
    )
    db.run(
        "INSERT INTO login_etl_processed_messages (message_id, processed_at)"
        " SELECT 'gone-' || g, now() - interval '100 days' FROM generate_series(1, 20000) g"
    )
    stats = db.run("SELECT reltuples FROM pg_class WHERE relname = 'login_etl_processed_messages'")
    assert stats[0][0] < 0  # never analyzed

    deleted = store.prune(HOUR, 100, steps(1))

    assert 0 < deleted <= 2 * 100


def test_the_prune_runs_whatever_the_drains_safety_margin(
    store: PostgresLoginStore, db: pg8000.native.Connection
) -> None:
    """The drain's margin is the drain's: a prune's steps are short and need only the
    deadline's own margin."""
    store.write([(f"m{i}", ROW) for i in range(30)])
    age_everything(db, 50 * 86_400)  # older than the default window (29 days)
    with patched_environ({"DRAIN_SAFETY_MARGIN_MS": "120000", "QUEUE_URL": ""}):
        reset_runtime()
        summary = lambda_handler({"action": "prune-ledger"}, LocalContext(timeout_s=120))
    assert summary["deleted"] == 30
