"""A batch's message ids into the ledger, learning which ones were recorded already.

Nearly every batch is new to the ledger; a redelivered one is the exception. So the ids go in
by a plain ``COPY``, in code point order, first in the message that also copies the rows and
commits (``copy_of``): a unique violation means some are recorded already (a redelivery, or a
concurrent batch that committed them while this one waited). The server then skips the rest of
the message, the transaction is rolled back, and ``INSERT_LEDGER`` (``ON CONFLICT DO
NOTHING``, returning the ids already there) runs in a new one (``insert_ids``).

The ``COPY`` of sorted ids is the fastest of the inserts measured (docs/benchmarks.md,
"The ledger insert").

Both statements take the ids' locks in one global order, code point order (``COLLATE "C"`` in
SQL, ``sorted`` in Python, the same order for UTF-8), so concurrent batches that share ids
wait for each other instead of deadlocking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pg8000.native

from login_etl.adapters.postgres.connection import sqlstate
from login_etl.adapters.postgres.schema import INSERT_LEDGER, LEDGER, copy_text
from login_etl.adapters.postgres.transaction import Session
from login_etl.deadline import Deadline

UNIQUE_VIOLATION = "23505"
# COPY FROM is refused on a table with row-level security enabled for the user (the function's
# role is not the ledger's owner when the admin set the database up): the INSERT, which such a
# policy allows, was the only statement before the COPY and takes over.
FEATURE_NOT_SUPPORTED = "0A000"
COPY_IDS = f"COPY {LEDGER} (message_id) FROM STDIN"


def copy_of(ids: Sequence[str]) -> tuple[str, bytes]:
    """The ledger's ``COPY`` of ``ids``, for ``Session.copy_in``: the first of its message."""
    return COPY_IDS, copy_ids(ids)


def refused_by_ledger(session: Session, error: pg8000.native.DatabaseError) -> bool:
    """The message that began with the ledger's ``COPY`` was refused by it: some ids are
    recorded already, or the ledger takes no ``COPY``; ``insert_ids`` is the way on.

    Refused before a second ``COPY`` began: a ``COPY`` under row-level security is refused
    before it begins, so the rows' one, refused so, lands here too, and is refused again after
    ``insert_ids``, as it would be at any time. A refusal taken for the ledger's wrongly costs
    a round trip, never a row: the rows' ``COPY`` after ``insert_ids`` meets it again.
    """
    return session.copies_begun <= 1 and sqlstate(error) in (
        UNIQUE_VIOLATION,
        FEATURE_NOT_SUPPORTED,
    )


def insert_ids(session: Session, ids: Sequence[str], deadline: Deadline | None) -> set[str]:
    """Roll back the refused transaction, begin another, insert ``ids`` there; return those
    that were recorded already. On return the ids are locked by the new transaction.
    """
    session.end("ROLLBACK")
    session.begin(deadline)
    return {row[0] for row in session.run(INSERT_LEDGER, ids=json_array(ids))}


def copy_ids(ids: Sequence[str]) -> bytes:
    """The ids as COPY text, one a line, in code point order (the ledger's lock order).

    Message ids (SQS's are UUIDs) need no escaping, and are checked for it at once.
    """
    ordered = sorted(ids)
    text = "\n".join(ordered)
    if "\\" in text or "\t" in text or "\r" in text or text.count("\n") != len(ordered) - 1:
        text = "\n".join(map(copy_text, ordered))
    # surrogatepass: an id Postgres cannot store is refused by Postgres, as any other.
    return (text + "\n").encode("utf-8", "surrogatepass") if ordered else b""


def json_array(ids: Sequence[str]) -> str:
    """The ids as a JSON array of strings.

    Message ids (SQS's are UUIDs) need no escaping; joined, they are checked at once, for a
    small part of what ``json.dumps`` costs (docs/benchmarks.md, "The ledger insert").
    Anything else (a quote, a backslash, a control or unprintable character) goes through
    ``json.dumps``.
    """
    joined = '","'.join(ids)
    plain = ids and joined.isprintable() and "\\" not in joined
    if plain and joined.count('"') == 2 * (len(ids) - 1):
        return f'["{joined}"]'
    return json.dumps(ids)
