"""Where a 10,000-record batch's time goes: ``python -m benchmarks.phases [--rounds N]``.

``make bench`` says how fast; this says why. It runs ``lambda_handler`` on a local stack with
the streamed write's thread timed at each step, turn about with the serial floor on the same
bodies, and prints the median of each phase (ms):

* ``validate``: from the call to the writer's start (SQS records, parsing, validation); only
  Python works, Postgres waits for the ids;
* ``ledger``: the writer's ledger insert, while the rows are masked;
* ``mask``: from the writer's start to the last row made and handed over;
* ``last chunk sent after last row`` and ``COPY's end and COMMIT``: the tail, what is left
  for the writer and Postgres once the masking is done;
* ``after``: from the write's end to the handler's return (the response, frees).

This is how the tail of issue 16 was found: the ledger insert plus the COPY had become longer
than the masking they overlap (a COPY 12 ms behind the last row), until the ledger's COPY.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from benchmarks.benchmark import QUIET
from benchmarks.floor import run_floor
from benchmarks.probe import sqs_event
from login_etl.adapters import postgres_store, postgres_stream
from login_etl.adapters.postgres_connection import Session, connect
from login_etl.adapters.postgres_ledger import record_ids
from login_etl.config import Settings, connection_params_from_url
from login_etl.domain.masking import DeterministicMasker
from login_etl_cli.sample_data import generate
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.stack import local_stack
from login_etl_local.stack_record import patched_environ

BATCH = 10_000
marks: dict[str, float] = {}


def _timed_record_ids(session: Session, ids: Sequence[str]) -> set[str]:
    seen = record_ids(session, ids)
    marks["ledger done"] = time.perf_counter()
    return seen


class TimedWrite(postgres_stream.StreamedWrite):
    """The streamed write, its steps timed; its statements are the module's own, untouched."""

    def __init__(self, *args: Any) -> None:
        marks["writer start"] = time.perf_counter()
        super().__init__(*args)

    def finish(self) -> None:
        marks["last row"] = time.perf_counter()
        super().finish()
        marks["written"] = time.perf_counter()

    def _lines(self, seen: set[str]) -> Iterator[str]:
        yield from super()._lines(seen)
        marks["last chunk sent"] = time.perf_counter()  # Postgres has all the COPY's data


def phases(started: float, ended: float) -> dict[str, float]:
    """The marks of one batch as durations in ms."""
    m = marks
    return {
        "validate": m["writer start"] - started,
        "ledger": m["ledger done"] - m["writer start"],
        "mask": m["last row"] - m["writer start"],
        "last chunk sent after last row": m["last chunk sent"] - m["last row"],
        "COPY's end and COMMIT": m["written"] - m["last chunk sent"],
        "after": ended - m["written"],
        "login-etl": ended - started,
    }


def main() -> int:
    """Rounds of one 10,000-record batch through the handler and the floor, turn about."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with local_stack() as stack, patched_environ({**stack.environment(), **QUIET}):
        from login_etl.handler import lambda_handler  # noqa: PLC0415 - after the env is set

        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        mask = DeterministicMasker(bytes(range(32))).mask
        lambda_handler(sqs_event(generate(10, 1)), LocalContext())
        vars(postgres_store)["StreamedWrite"] = TimedWrite  # the store's writer, timed
        vars(postgres_stream)["record_ids"] = _timed_record_ids
        samples: dict[str, list[float]] = defaultdict(list)
        for round_ in range(args.rounds):
            bodies = generate(BATCH, 7_000 + round_, malformed_ratio=0.01)
            for contender in ("floor", "login-etl")[:: 1 if round_ % 2 else -1]:
                if contender == "floor":
                    samples["floor"].append(run_floor(conn, bodies, mask, date.today()).total_s)
                    continue
                event, context = sqs_event(bodies), LocalContext()
                marks.clear()
                started = time.perf_counter()
                lambda_handler(event, context)
                for name, seconds in phases(started, time.perf_counter()).items():
                    samples[name].append(seconds)
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
        conn.close()
    for name, values in samples.items():
        print(f"{name:>30} {statistics.median(values) * 1000:7.1f} ms")
    ratios = [f / e for f, e in zip(samples["floor"], samples["login-etl"], strict=True)]
    print(f"{'login-etl / floor':>30} {statistics.median(ratios):7.2f} (median of round ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
