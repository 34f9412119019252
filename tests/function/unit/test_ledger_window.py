"""The ledger's window: as long as a message id can come back, never shorter than the queues."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from login_etl.ledger_pruning import ledger_window
from login_etl.queue_ports import QueueRetention

DAY = 86_400
retentions = st.integers(60, 14 * DAY)


def test_the_settings_alone_when_the_queues_were_not_read() -> None:
    window = ledger_window(4 * DAY, 14 * DAY, DAY, None)
    assert (window.seconds, window.queues_unread, window.settings_below_queues) == (
        19 * DAY,
        True,
        False,
    )


@given(retentions, retentions, retentions, st.none() | retentions, st.integers(0, DAY))
def test_never_shorter_than_the_settings_or_the_queues(
    queue_s: int, dlq_s: int, real_queue_s: int, real_dlq_s: int | None, margin_s: int
) -> None:
    window = ledger_window(queue_s, dlq_s, margin_s, QueueRetention(real_queue_s, real_dlq_s))
    assert window.seconds >= queue_s + dlq_s + margin_s
    assert window.seconds >= real_queue_s + (real_dlq_s or 0) + margin_s
    assert window.settings_below_queues == (real_queue_s > queue_s or (real_dlq_s or 0) > dlq_s)
    assert not window.queues_unread


def test_queues_that_keep_messages_longer_set_the_window() -> None:
    window = ledger_window(60, 60, 0, QueueRetention(4 * DAY, 14 * DAY))
    assert (window.seconds, window.settings_below_queues) == (18 * DAY, True)
