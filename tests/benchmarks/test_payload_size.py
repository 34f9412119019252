"""The largest SQS batch whose event fits Lambda's 6 MB invocation payload."""

from __future__ import annotations

import hashlib

import pytest

from benchmarks.payload import PAYLOAD_LIMIT_BYTES, estimate, event_bytes, largest_batch
from benchmarks.probe import sqs_event
from login_etl_cli.sample_data import generate


def test_the_limit_is_lambdas_6_mb() -> None:
    assert PAYLOAD_LIMIT_BYTES == 6 * 1024 * 1024


def test_the_largest_batch_fits_every_round_and_one_more_record_does_not_fit_one() -> None:
    rounds = [generate(300, seed, malformed_ratio=0.01) for seed in (1, 2, 3)]
    limit = 200_000
    count = largest_batch(rounds, limit)
    assert all(event_bytes(bodies[:count]) <= limit for bodies in rounds)
    assert any(event_bytes(bodies[: count + 1]) > limit for bodies in rounds)
    assert abs(count - estimate(rounds[0], limit)) <= 3  # the mean record says about as much


def test_at_6_mb_the_batch_is_thousands_of_records() -> None:
    count = estimate(generate(1_000, 5, malformed_ratio=0.01))
    assert 4_000 < count < 10_000  # the event source mapping's maximum is 10,000


def test_bodies_that_all_fit_say_so() -> None:
    with pytest.raises(ValueError, match="generate more"):
        largest_batch([generate(10, 1)], 200_000)


def test_each_record_carries_what_lambda_puts_in_it() -> None:
    bodies = generate(3, 9)
    records = sqs_event(bodies)["Records"]
    assert [record["body"] for record in records] == bodies
    for record, body in zip(records, bodies, strict=True):
        assert record["md5OfBody"] == hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
        assert 320 <= len(record["receiptHandle"]) <= 400  # SQS's are in that range
        assert set(record["attributes"]) == {
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        }
    assert len({record["receiptHandle"] for record in records}) == 3
