"""How the streamed write hands a batch's COPY lines to its writer thread (``_hand_over``)."""

from __future__ import annotations

from datetime import date

import pytest

from login_etl.adapters import postgres_store
from login_etl.adapters.postgres_store import (
    STREAM_CHUNK_ROWS,
    STREAM_MIN_ROWS,
    STREAM_TAIL_CHUNK_ROWS,
    STREAM_TAIL_ROWS,
    _hand_over,
)
from login_etl.adapters.postgres_stream import StreamedWrite
from login_etl.domain.models import UserLoginRow


class Chunks(StreamedWrite):
    """Records what is sent; no thread, no connection."""

    def __init__(self) -> None:  # not StreamedWrite.__init__: it starts a writer thread
        self.sent: list[tuple[int, list[str]]] = []

    def send(self, start: int, lines: list[str]) -> None:
        self.sent.append((start, lines))


def row(i: int) -> UserLoginRow:
    return UserLoginRow(f"u{i}", "ios", "ip", "dev", None, 1, date(2026, 11, 25))


BOUNDARIES = [STREAM_MIN_ROWS, STREAM_TAIL_ROWS, STREAM_TAIL_ROWS + 1, STREAM_CHUNK_ROWS]
BOUNDARIES += [n + d for n in (STREAM_CHUNK_ROWS + STREAM_TAIL_ROWS,) for d in (-1, 0, 1)]


@pytest.mark.parametrize("count", sorted({*BOUNDARIES, STREAM_CHUNK_ROWS - 1, 10_000}))
def test_every_row_is_sent_once_in_order_the_tail_in_small_chunks(count: int) -> None:
    """The start index of a chunk is what the writer uses to leave out rows of ids already in
    the ledger: the chunks must tile the batch. The last STREAM_TAIL_ROWS rows go in chunks
    of STREAM_TAIL_CHUNK_ROWS (a 500-row batch went in one chunk, after the last row)."""
    writer = Chunks()
    made: list[UserLoginRow] = []
    rows = [row(i) for i in range(count)]

    _hand_over(writer, count, ((str(i), r) for i, r in enumerate(rows)), made)

    assert made == rows
    starts = [start for start, _ in writer.sent]
    sizes = [len(lines) for _, lines in writer.sent]
    assert starts == [sum(sizes[:i]) for i in range(len(sizes))]
    assert [line for _, lines in writer.sent for line in lines] == list(
        map(postgres_store._copy_line, rows)
    )
    tail_sizes = sizes[-(STREAM_TAIL_ROWS // STREAM_TAIL_CHUNK_ROWS) :]
    assert tail_sizes == [STREAM_TAIL_CHUNK_ROWS] * len(tail_sizes)
    assert max(sizes) <= STREAM_CHUNK_ROWS
