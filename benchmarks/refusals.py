"""``make bench-refusals``: what refused rows cost a 10,000-record batch.

An existing ``user_logins`` with a CHECK constraint of its own refuses k rows of each batch;
the real pipeline (parse, validate, mask, write, isolate the refused rows, write the rest) runs
on a throwaway Postgres. Every k is measured in each round (interleaved: 0, 1, 100, 5,000,
0, 1, ...) so that the machine's load moves them all alike; the report gives the median and
the spread per k, and the ratio to k = 0 from the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import date

from login_etl.adapters.postgres.connection import connect
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings, connection_params_from_url
from login_etl.domain.masking import DeterministicMasker, TokenMemo
from login_etl.domain.models import QueueMessage
from login_etl.pipeline import process_batch
from login_etl_cli.sample_data import generate
from login_etl_local.postgres_server import PostgresServer

BATCH = 10_000
REFUSED = (0, 1, 100, 5_000)
TABLE = """
CREATE TABLE user_logins(user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
  masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date,
  CHECK (locale IS DISTINCT FROM 'XX'))
"""


def batch(refused: int, seed: int) -> list[QueueMessage]:
    """10,000 valid logins; ``refused`` of them, spread evenly, carry the refused locale."""
    every = BATCH // refused if refused else 0
    return [
        QueueMessage(
            f"{seed}-{i}",
            json.dumps({**body, "locale": "XX" if every and i % every == 0 else "RU"}),
        )
        for i, body in enumerate(json.loads(b) for b in generate(BATCH, seed, malformed_ratio=0))
    ]


def main() -> None:
    """Run the rounds and print the table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measurements per k (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()

    server = PostgresServer.start()
    try:
        # Only the database settings matter here; the data key is a local random one.
        settings = Settings.from_env({"DATABASE_URL": server.url, "DATA_KEY_CIPHERTEXT": "-"})
        params = connection_params_from_url(server.url, settings)
        admin = connect(params)
        tokens_of = TokenMemo(DeterministicMasker(os.urandom(32)).mask_many, 0)
        seconds: dict[int, list[float]] = {k: [] for k in REFUSED}
        for round_ in range(args.rounds):
            for k in REFUSED:
                admin.run("DROP TABLE IF EXISTS user_logins, login_etl_processed_messages CASCADE")
                admin.run(TABLE)
                messages = batch(k, seed=1000 * round_ + k)
                store = PostgresLoginStore(params)
                started = time.perf_counter()
                outcome = process_batch(messages, tokens_of, store, date(2026, 11, 25))
                seconds[k].append(time.perf_counter() - started)
                store.close()
                if (outcome.written, len(outcome.failures)) != (BATCH - k, k):
                    raise SystemExit(f"k={k}: wrote {outcome.written}, failed {outcome.failures}")
        admin.close()
    finally:
        server.stop()

    base = statistics.median(seconds[0])
    results = [
        {
            "refused": k,
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
            "ratio_to_none_refused": round(statistics.median(times) / base, 2),
        }
        for k, times in seconds.items()
    ]
    print(f"10,000-record batches, {args.rounds} interleaved rounds, pipeline + Postgres:")
    print(f"{'refused':>8} {'median s':>9} {'min-max s':>12} {'x k=0':>6}")
    for r in results:
        spread = f"{r['min_s']}-{r['max_s']}"
        print(f"{r['refused']:>8} {r['median_s']:>9} {spread:>12} {r['ratio_to_none_refused']:>6}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
