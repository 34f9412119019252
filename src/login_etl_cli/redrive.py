"""``login-etl dlq redrive``: move dead-lettered messages back to the source queue, losslessly.

Each message is sent first and deleted from the DLQ only after SQS accepted the copy, so an
interruption can duplicate a message but never lose one. The copy carries the attribute
``login_etl_original_message_id`` with a claim signed by the current data key
(``domain/redrive_claim``), and the function's ledger keys on the id it names once the claim
verifies: a duplicated copy is recognised and written once. The claim also carries the
original's SentTimestamp (which the DLQ keeps), so the row is dated by the login, not the
redrive, and the time it was signed, just before the copy is sent. (SQS's own
``StartMessageMoveTask`` gives the copies new ids and no such link, so an interrupted move
followed by a retry could write a row twice.)

A message that already carries a claim (a copy dead-lettered again) keeps the id and time it
names, but only if the claim verifies under a key of the ring and is fresh (the function's rule);
otherwise the claim is a producer's forgery or replay and the message is re-signed as itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from login_etl.domain.redrive_claim import (
    CLAIM_ATTRIBUTE,
    ClaimKey,
    RedriveClaim,
    VerifyClaim,
    sent_time_ms,
)

from login_etl.domain.errors import InvalidMessageError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef


def redrive(
    sqs: SQSClient,
    dlq_url: str,
    queue_url: str,
    *,
    signer: ClaimKey,
    verify: VerifyClaim,
    hold_s: int = 120,
    keep: Callable[[MessageTypeDef], bool] | None = None,
    on_progress: Callable[[int], None] | None = None,
    clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> int:
    """Move every message of ``dlq_url`` (that ``keep`` accepts) to ``queue_url``; the number moved.

    Each message is held (invisible in the DLQ) for ``hold_s`` while it is copied; after an
    interruption, the unfinished ones come back then, and a rerun moves them. The ones ``keep``
    refuses stay in the DLQ, visible again once the move is over. ``signer`` (the current data
    key's) signs each copy's claim; ``verify`` (every key of the ring) checks the claim a
    message already carries.
    """
    fifo = queue_url.endswith(".fifo")
    moved = 0
    refused: dict[str, str] = {}  # message id -> receipt handle, released at the end
    try:
        while True:
            messages = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=hold_s,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["MessageGroupId", "SentTimestamp"],
            ).get("Messages", [])
            if not messages:
                return moved
            if keep is not None:
                refused.update(
                    (m["MessageId"], m["ReceiptHandle"]) for m in messages if not keep(m)
                )
                messages = [m for m in messages if m["MessageId"] not in refused]
                if not messages:
                    continue
            moved += _move(
                sqs,
                dlq_url,
                queue_url,
                messages,
                fifo,
                signing=_Signing(signer, verify, clock_ms()),
            )
            if on_progress is not None:
                on_progress(moved)
    finally:
        _release(sqs, dlq_url, list(refused.values()))


def _move(
    sqs: SQSClient,
    dlq_url: str,
    queue_url: str,
    messages: list[MessageTypeDef],
    fifo: bool,
    *,
    signing: _Signing,
) -> int:
    """Send signed copies, then delete the originals that were copied; the number moved."""
    entries = [_copy(str(i), message, fifo, signing) for i, message in enumerate(messages)]
    response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    sent = {entry["Id"] for entry in response.get("Successful", [])}
    done = [m for i, m in enumerate(messages) if str(i) in sent]
    if done:
        sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
            ],
        )
    if response.get("Failed"):
        codes = sorted({f["Code"] for f in response["Failed"]})
        raise RuntimeError(f"SQS refused {len(response['Failed'])} copies: {codes}")
    return len(done)


def _release(sqs: SQSClient, dlq_url: str, receipts: list[str]) -> None:
    """Make held messages visible in the DLQ again at once."""
    for start in range(0, len(receipts), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(receipts[start : start + 10])
            ],
        )


@dataclass(frozen=True, slots=True)
class _Signing:
    """How one batch of copies is signed: the key, the ring that checks old claims, the time."""

    signer: ClaimKey
    verify: VerifyClaim
    now_ms: int  # read just before the batch is sent: the copies' SentTimestamp is close to it


def _copy(
    entry_id: str, message: MessageTypeDef, fifo: bool, signing: _Signing
) -> SendMessageBatchRequestEntryTypeDef:
    attributes: dict[str, Any] = dict(message.get("MessageAttributes", {}))
    original_id, original_sent_ms = _original(message, signing.verify, signing.now_ms)
    claim = signing.signer.sign(
        message["Body"], RedriveClaim(original_id, original_sent_ms, signing.now_ms)
    )
    attributes[CLAIM_ATTRIBUTE] = {"DataType": "String", "StringValue": claim}
    entry: SendMessageBatchRequestEntryTypeDef = {
        "Id": entry_id,
        "MessageBody": message["Body"],
        "MessageAttributes": attributes,
    }
    if fifo:
        entry["MessageGroupId"] = message.get("Attributes", {}).get("MessageGroupId", "redrive")
        # This DLQ message's own id, not the original's: SQS refuses (silently, for 5 minutes)
        # a deduplication id it has seen, even for a message since deleted, so a copy that was
        # dead-lettered again and redriven within 5 minutes would vanish. Exactly-once is the
        # ledger's job, through the signed claim (found in review).
        entry["MessageDeduplicationId"] = message["MessageId"]
    return entry


def _original(message: MessageTypeDef, verify: VerifyClaim, now_ms: int) -> tuple[str, int]:
    """The id and SentTimestamp the message counts as: a valid earlier claim's, else its own.

    The DLQ keeps a message's SentTimestamp; without one (an emulator's omission) the login is
    dated now, as the function dates a message it cannot date.
    """
    sent = message.get("Attributes", {}).get("SentTimestamp")
    previous = message.get("MessageAttributes", {}).get(CLAIM_ATTRIBUTE)
    if previous is not None:
        try:
            claim = verify(previous.get("StringValue", ""), message["Body"])
        except InvalidMessageError:
            pass  # forged or malformed: the message is itself, whatever it claimed
        else:
            if claim.is_fresh_for(sent):  # else a replay onto a later login: itself
                return claim.original_id, claim.original_sent_ms
    own_sent_ms = sent_time_ms(sent)
    return message["MessageId"], now_ms if own_sent_ms is None else own_sent_ms
