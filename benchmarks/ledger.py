"""``make bench-ledger``: what the ledger's size costs the writers, and what pruning costs them.

One throwaway Postgres, one database per ledger size (default 0, 1 M and 5 M entries;
``--sizes 0,10000000,50000000`` for the long mode), each with the real store writing
10,000-record batches of fresh message ids. Rounds are interleaved across the databases (0,
1 M, 5 M, 0, 1 M, ...) so that the machine's load moves them alike; the report gives medians,
spread and the ratio to the empty ledger. Then, on the largest ledger with half its entries
past the retention window, the same batches are timed while ``prune`` runs beside them, against
rounds without it.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from dataclasses import replace
from datetime import date

from login_etl.adapters.postgres.connection import ConnectionParams, connect
from login_etl.adapters.postgres.store import PostgresLoginStore
from login_etl.config import Settings, connection_params_from_url
from login_etl.domain.models import UserLoginRow
from login_etl_local.postgres_server import PostgresServer

BATCH = 10_000
ROW = UserLoginRow("u", "ios", "t" * 120, "d" * 120, "RU", 2_003_000, date(2026, 11, 25))


def fill(params: ConnectionParams, size: int) -> None:
    """A ledger of ``size`` entries, spread over the last 40 days (oldest first on disk)."""
    store = PostgresLoginStore(params)
    store.write([("first", ROW)])  # the function's own DDL
    store.close()
    conn = connect(replace(params, statement_timeout_ms=0))  # filling 50 M takes minutes
    conn.run(
        "INSERT INTO login_etl_processed_messages (message_id, processed_at)"
        " SELECT gen_random_uuid()::text, now() - (CAST(:size - g AS double precision)"
        " / GREATEST(:size, 1)) * interval '40 days' FROM generate_series(1, :size) g",
        size=size,
    )
    conn.run("VACUUM ANALYZE login_etl_processed_messages")
    conn.close()


def batch_seconds(store: PostgresLoginStore) -> float:
    rows = [(str(uuid.uuid4()), ROW) for _ in range(BATCH)]
    started = time.perf_counter()
    store.write(rows)
    return time.perf_counter() - started


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000000,5000000", help="ledger sizes, commas")
    parser.add_argument("--rounds", type=int, default=7, help="batches per size (default 7)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    server = PostgresServer.start()
    try:
        settings = Settings.from_env({"DATABASE_URL": server.url, "DATA_KEY_CIPHERTEXT": "-"})
        base = connection_params_from_url(server.url, settings)
        admin = connect(base)
        stores = {}
        for size in sizes:
            name = f"ledger_{size}"
            admin.run(f"CREATE DATABASE {name}")
            params = replace(base, database=name)
            started = time.perf_counter()
            fill(params, size)
            print(f"ledger of {size:,} entries filled in {time.perf_counter() - started:.0f} s")
            stores[size] = PostgresLoginStore(params)
        admin.close()

        seconds: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(args.rounds):
            for size in sizes:
                seconds[size].append(batch_seconds(stores[size]))
        base_median = statistics.median(seconds[sizes[0]])
        print(f"\n10,000-record batches (store only), {args.rounds} interleaved rounds:")
        print(f"{'ledger entries':>15} {'msg/s':>8} {'median s':>9} {'min-max s':>13} {'x':>5}")
        for size, times in seconds.items():
            median = statistics.median(times)
            spread = f"{min(times):.3f}-{max(times):.3f}"
            ratio = median / base_median
            print(f"{size:>15,} {BATCH / median:>8,.0f} {median:>9.3f} {spread:>13} {ratio:>5.2f}")

        measure_pruning(stores[sizes[-1]], replace(base, database=f"ledger_{sizes[-1]}"))
        for store in stores.values():
            store.close()
    finally:
        server.stop()


def measure_pruning(largest: PostgresLoginStore, params: ConnectionParams) -> None:
    """Batches on the largest ledger while half of it is pruned beside them, and without."""
    rounds = 7
    quiet = [batch_seconds(largest) for _ in range(rounds)]
    during: list[float] = []
    pruned: list[int] = []
    finished = threading.Event()
    pruner = PostgresLoginStore(params)

    def prune() -> None:
        # 20 days: half of the 40 days the entries are spread over.
        pruned.append(pruner.prune(20 * 86_400, 5_000, lambda: True))
        finished.set()

    pruning = threading.Thread(target=prune)
    started = time.perf_counter()
    pruning.start()
    while not finished.is_set() or len(during) < 3:
        during.append(batch_seconds(largest))
    pruning.join()
    prune_s = time.perf_counter() - started
    pruner.close()
    print(
        f"\npruning {pruned[0]:,} entries took {prune_s:.1f} s;"
        f" batches meanwhile: median {statistics.median(during):.3f} s"
        f" (max {max(during):.3f}) vs {statistics.median(quiet):.3f} s without"
        f" ({statistics.median(during) / statistics.median(quiet):.2f}x)"
    )


if __name__ == "__main__":
    main()
