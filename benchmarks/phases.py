"""Where a batch's time goes: ``python -m benchmarks.phases [--rounds N] [--batch N]``.

``make bench`` says how fast; this says why. It runs ``lambda_handler`` on a local stack, turn
about with the serial floor on the same bodies, and prints the median of each phase (ms), as
the pipeline measures them (``BatchOutcome``):

* ``prepare``: parse, validate and mask every message (Python only; Postgres waits);
* ``write``: the store's transaction(s): the ledger insert, the COPY, the COMMIT;
* ``rest``: the handler's own work around them (SQS records, the response, logging).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from datetime import date

from benchmarks.benchmark import QUIET
from benchmarks.floor import run_floor
from benchmarks.probe import sqs_event
from login_etl import handler
from login_etl.adapters.postgres.connection import connect
from login_etl.config import Settings, connection_params_from_url
from login_etl.domain.masking import DeterministicMasker
from login_etl.pipeline import BatchOutcome
from login_etl_cli.sample_data import generate
from login_etl_local.event_source_mapping import LocalContext
from login_etl_local.stack import local_stack
from login_etl_local.stack_record import patched_environ

outcomes: list[BatchOutcome] = []


def main() -> int:
    """Rounds of one 10,000-record batch through the handler and the floor, turn about."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    with local_stack() as stack, patched_environ({**stack.environment(), **QUIET}):
        conn = connect(connection_params_from_url(stack.database_url, Settings.from_env()))
        mask = DeterministicMasker(bytes(range(32))).mask
        handler.lambda_handler(sqs_event(generate(10, 1)), LocalContext())
        vars(handler)["report"] = outcomes.append  # the pipeline's own timings, kept
        samples: dict[str, list[float]] = defaultdict(list)
        for round_ in range(args.rounds):
            bodies = generate(args.batch, 7_000 + round_, malformed_ratio=0.01)
            for contender in ("floor", "login-etl")[:: 1 if round_ % 2 else -1]:
                if contender == "floor":
                    samples["floor"].append(run_floor(conn, bodies, mask, date.today()).total_s)
                    continue
                event, context = sqs_event(bodies), LocalContext()
                outcomes.clear()
                started = time.perf_counter()
                handler.lambda_handler(event, context)
                total = time.perf_counter() - started
                (outcome,) = outcomes
                samples["prepare"].append(outcome.prepare_ms / 1000)
                samples["write"].append(outcome.write_ms / 1000)
                samples["rest"].append(total - (outcome.prepare_ms + outcome.write_ms) / 1000)
                samples["login-etl"].append(total)
            conn.run("TRUNCATE user_logins, login_etl_processed_messages")
        conn.close()
    for name, values in samples.items():
        print(f"{name:>30} {statistics.median(values) * 1000:7.1f} ms")
    ratios = [f / e for f, e in zip(samples["floor"], samples["login-etl"], strict=True)]
    print(f"{'login-etl / floor':>30} {statistics.median(ratios):7.2f} (median of round ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
