"""Which rows of a refused batch Postgres refuses, found in one round trip, in bounded memory.

When the batch's COPY (or its COMMIT) fails on a row's content, the rows are tried again in a
PL/pgSQL block, in batch order, inside a transaction that is rolled back after:

* constraints are made IMMEDIATE first, so an error that a ``DEFERRABLE INITIALLY DEFERRED``
  constraint would only raise at COMMIT is raised by the row that causes it;
* rows are first tried in a subtransaction that is always undone (an exception block
  ending in a sentinel error), a chunk at a time and then, in a refused chunk, one by one;
  what passed is inserted for real outside any subtransaction. Rows are checked against the
  rows before them, so a row that conflicts with an earlier one of the batch is the one
  refused. Undone subtransactions release
  their locks and transaction ids at once, so one savepoint is alive at a time whatever the
  number of refused rows. (Nested client-side savepoints, the previous design, kept one
  subtransaction and its lock per level and per accepted half: thousands of refused rows
  exhausted the lock table, ``53200 out of shared memory``; docs/benchmarks.md,
  "Refused rows".)

The batch travels as a transaction-local setting (``set_config(..., true)``): a ``DO`` block
takes no parameters, and the setting needs no privilege, no temporary table and no DDL.
Errors that cannot be about one row (``is_row_level``) abort the block.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from login_etl.adapters.postgres.schema import COLUMNS, INSERT_LEDGER, TABLE
from login_etl.adapters.postgres.transaction import Session, transaction
from login_etl.deadline import Deadline
from login_etl.domain.models import UserLoginRow

# Isolating refused rows tries each row of a refused chunk twice (a probe, then for real) in
# one statement: it gets this many statement timeouts (within the deadline), so a batch whose
# write fits the timeout is not dead-lettered because one of its rows was refused.
ISOLATION_TIMEOUT_FACTOR = 5

# Errors a single row can cause: data exceptions (22), constraints (23), WITH CHECK OPTION
# (44), a trigger's RAISE (P0, PL/pgSQL's default), a row-level security policy (42501).
# Anything else (connection, resources, timeouts, serialization...) is about the database.
ROW_LEVEL_SQLSTATE_CLASSES = ("22", "23", "44", "P0")
ROW_LEVEL_SQLSTATES = ("42501",)
# Data and constraint errors name a row for certain; for the others, a refusal is only
# believed if some rows passed (every row refused with 42501 is a missing grant, not a row).
DATA_SQLSTATE_CLASSES = ("22", "23")
_BATCH_SETTING = "login_etl.isolate_batch"
_REFUSED_SETTING = "login_etl.refused_rows"
_COLUMN_LIST = ", ".join(COLUMNS)
_CLASSES = "(" + ", ".join(f"'{c}'" for c in ROW_LEVEL_SQLSTATE_CLASSES) + ")"
_CODES = "(" + ", ".join(f"'{c}'" for c in ROW_LEVEL_SQLSTATES) + ")"
# Rows are tried a chunk at a time, and one by one only inside a chunk that is refused: with
# few refused rows (the usual case) that is ~200 statements for 10,000 rows instead of 20,000
# (docs/benchmarks.md, "Refused rows"). sqrt(10,000) balances the two.
CHUNK_ROWS = 100
_INSERT = (
    f"INSERT INTO {TABLE} ({_COLUMN_LIST}) "  # noqa: S608 - constant names only
    f"SELECT {_COLUMN_LIST} FROM jsonb_populate_recordset(NULL::{TABLE}, rows)"
)
# jsonb_populate_recordset converts each value with the column type's input function and type
# modifier, as COPY does: a 129-character user_id is refused (22001), never truncated.
# A "probe" is a subtransaction (an exception block) always undone by the sentinel LE000.
_ISOLATE = f"""
DO $$
DECLARE
  chunk jsonb;
  rows jsonb;
  position integer := 0;
  passed boolean;
  refused jsonb := '{{}}';
BEGIN
  FOR chunk IN SELECT value FROM jsonb_array_elements(current_setting('{_BATCH_SETTING}')::jsonb)
  LOOP
    rows := chunk;
    passed := false;
    BEGIN
      {_INSERT};
      passed := true;
      RAISE SQLSTATE 'LE000';
    EXCEPTION
      WHEN SQLSTATE 'LE000' THEN NULL;
      WHEN OTHERS THEN
        IF left(SQLSTATE, 2) NOT IN {_CLASSES} AND SQLSTATE NOT IN {_CODES} THEN RAISE; END IF;
    END;
    IF passed THEN
      {_INSERT};  -- kept, in the top transaction: later rows are checked against it
      position := position + jsonb_array_length(chunk);
      CONTINUE;
    END IF;
    FOR rows IN SELECT jsonb_build_array(value) FROM jsonb_array_elements(chunk) LOOP
      passed := false;
      BEGIN
        {_INSERT};
        passed := true;
        RAISE SQLSTATE 'LE000';
      EXCEPTION
        WHEN SQLSTATE 'LE000' THEN NULL;
        WHEN OTHERS THEN
          IF left(SQLSTATE, 2) NOT IN {_CLASSES} AND SQLSTATE NOT IN {_CODES} THEN RAISE;
          END IF;
          refused := refused || jsonb_build_object(position::text, SQLSTATE);
      END;
      IF passed THEN
        {_INSERT};
      END IF;
      position := position + 1;
    END LOOP;
  END LOOP;
  PERFORM set_config('{_REFUSED_SETTING}', refused::text, true);
END
$$
"""  # noqa: S608 - constant names only


def is_row_level(state: str) -> bool:
    """Whether a SQLSTATE can be about one row's content (then the rows are tried one by one)."""
    return state.startswith(ROW_LEVEL_SQLSTATE_CLASSES) or state in ROW_LEVEL_SQLSTATES


class UnattributedRefusalError(RuntimeError):
    """Postgres refused the batch for a row-level reason, but no single row reproduces it.

    Nothing is acknowledged: the invocation fails and the whole batch is retried.
    """

    def __init__(self, state: str) -> None:
        super().__init__(
            f"Postgres refused the batch ({state}) but no row of it is refused on its own;"
            " the whole batch will be retried"
        )
        self.sqlstate = state


def find_refused_rows(
    session: Session,
    rows: Sequence[tuple[str, UserLoginRow]],
    state: str,
    deadline: Deadline | None,
) -> dict[str, str]:
    """Message id -> SQLSTATE of each row Postgres refuses; nothing is left written.

    ``state`` is the batch's refusal. Messages already in the ledger are duplicates, not
    refusals, and are not tried. If no row is refused on its own (the refusal depended on
    something else, such as a concurrent writer), raise ``UnattributedRefusalError``: nothing
    may be acknowledged on this basis.
    """
    # Never committed: nothing of the trial stays, the caller writes the rest.
    with transaction(session, deadline, ISOLATION_TIMEOUT_FACTOR):
        session.run("SET CONSTRAINTS ALL IMMEDIATE")
        ids = json.dumps([message_id for message_id, _ in rows])
        seen = {r[0] for r in session.run(INSERT_LEDGER, ids=ids)}
        candidates = [(mid, row) for mid, row in rows if mid not in seen]
        records = [_as_json(row) for _, row in candidates]
        chunks = [records[i : i + CHUNK_ROWS] for i in range(0, len(records), CHUNK_ROWS)]
        batch = json.dumps(chunks)
        session.run("SELECT set_config(:name, :batch, true)", name=_BATCH_SETTING, batch=batch)
        session.run(_ISOLATE)
        answer = session.run("SELECT current_setting(:name)", name=_REFUSED_SETTING)
    refused: dict[str, str] = json.loads(answer[0][0])
    blamed_everything = len(refused) == len(candidates) > 1
    if not refused or (blamed_everything and not state.startswith(DATA_SQLSTATE_CLASSES)):
        raise UnattributedRefusalError(state)
    return {candidates[int(position)][0]: str(state) for position, state in refused.items()}


def _as_json(row: UserLoginRow) -> dict[str, object]:
    record: dict[str, object] = dict(zip(COLUMNS, row, strict=True))
    record["create_date"] = row.create_date.isoformat()
    return record
