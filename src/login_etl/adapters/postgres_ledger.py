"""A batch's message ids into the ledger, learning which ones were recorded already.

Nearly every batch is new to the ledger; a redelivered one is the exception. A plain
``INSERT`` of 10,000 ids costs half of ``INSERT_LEDGER`` (``ON CONFLICT DO NOTHING RETURNING``
and the ``EXCEPT ALL`` that returns only the ids already there): 4-6 µs a message against 8-12
on the same server, turn about (speculative insertion probes the index before every row, and
the CTE is scanned twice). The ledger insert was then the largest part of Postgres's work for
a batch, more than the COPY. So the plain insert goes first, in ``ORDER BY`` as
``INSERT_LEDGER`` (concurrent batches lock shared ids in one order: no deadlock). A unique
violation means some ids are recorded already (a redelivery, or a concurrent batch that
committed them while this one waited): nothing else has been done in the transaction yet, so
it is rolled back and ``INSERT_LEDGER`` runs in a new one, as it always did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pg8000.native

from login_etl.adapters.postgres_connection import Session, begin_session, sqlstate
from login_etl.adapters.postgres_schema import INSERT_LEDGER, LEDGER

UNIQUE_VIOLATION = "23505"
_INSERT_NEW_IDS = f"""
INSERT INTO {LEDGER} (message_id)
SELECT message_id FROM jsonb_array_elements_text(CAST({{ids}} AS jsonb)) AS batch(message_id)
ORDER BY message_id
"""  # noqa: S608 - constant names only
INSERT_NEW_IDS = _INSERT_NEW_IDS.format(ids=":ids")
# pg8000 sends a statement with parameters in three round trips (parse, describe, execute),
# one without in one: the ids go in the statement as a dollar-quoted literal, whose content
# is taken as is (no escape, whatever standard_conforming_strings says). An array that holds
# the tag itself (no SQS id can) goes as a parameter.
_TAG = "$login_etl_ids$"


def record_ids(session: Session, ids: Sequence[str]) -> set[str]:
    """Insert ``ids`` into the ledger; return those that were there already.

    The caller has begun the transaction and done nothing else in it; on return the ids are
    locked by it. One round trip; a redelivery costs three more and a new transaction.
    """
    conn = session.conn
    batch = json_array(ids)
    try:
        if _TAG in batch:
            conn.run(INSERT_NEW_IDS, ids=batch)
        else:
            conn.run(_INSERT_NEW_IDS.format(ids=f"{_TAG}{batch}{_TAG}"))
    except pg8000.native.DatabaseError as error:
        if sqlstate(error) != UNIQUE_VIOLATION:
            raise
    else:
        return set()
    conn.run("ROLLBACK")
    begin_session(session)
    return {row[0] for row in conn.run(INSERT_LEDGER, ids=batch)}


def json_array(ids: Sequence[str]) -> str:
    """The ids as a JSON array of strings.

    Message ids (SQS's are UUIDs) need no escaping; joined, they are checked at once: 100
    instructions an id against 2,200 for ``json.dumps`` (callgrind). Anything else (a quote,
    a backslash, a control or unprintable character) goes through ``json.dumps``.
    """
    joined = '","'.join(ids)
    plain = ids and joined.isprintable() and "\\" not in joined
    if plain and joined.count('"') == 2 * (len(ids) - 1):
        return f'["{joined}"]'
    return json.dumps(ids)
