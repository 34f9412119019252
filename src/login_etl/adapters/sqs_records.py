"""The records of an SQS event, as Lambda delivers them, -> ``QueueMessage``s.

Lambda's records are well formed in practice, but one odd record (a ``body`` that is null or an
object, a ``SentTimestamp`` that is a number, an ``attributes`` that is no map) must not
fail the whole batch: it becomes a message with a ``defect``, which the pipeline reports by its
``messageId`` with the reason (retried, then dead-lettered) while the others are written.
Details name fields and JSON types, never values.
"""

from __future__ import annotations

from typing import Any

from login_etl.domain.errors import InvalidMessageError, Reason
from login_etl.domain.models import QueueMessage, new_tuple
from login_etl.domain.validation import json_type


class MalformedEventError(ValueError):
    """The event cannot be answered record by record: the whole batch must be retried."""


def to_queue_messages(records: object) -> list[QueueMessage]:
    """Every record of ``event["Records"]``; raises only for a record that cannot be named.

    The usual record (string id and body, an attributes map with string values) is read
    inline: the checks of ``to_queue_message``, one function each, were a large part of a
    record's cost (docs/instructions.md, "SQS records"). Any other record goes through
    ``to_queue_message``; a property test holds the two equal.
    """
    if not isinstance(records, list):
        raise MalformedEventError(f"Records must be an array, got {json_type(records)}")
    messages = []
    for record in records:
        if type(record) is dict:
            try:  # subscripts, not .get: no method call (docs/instructions.md, "SQS records")
                message_id = record["messageId"]
                body = record["body"]
                attributes = record["attributes"]
            except KeyError:
                messages.append(to_queue_message(record))
                continue
            if (
                type(message_id) is str
                and message_id
                and type(body) is str
                and type(attributes) is dict
            ):
                sent = attributes.get("SentTimestamp")
                group = attributes.get("MessageGroupId")
                if (sent is None or type(sent) is str) and (group is None or type(group) is str):
                    messages.append(new_tuple(QueueMessage, (message_id, body, sent, group, None)))
                    continue
        messages.append(to_queue_message(record))
    return messages


def to_queue_message(record: object) -> QueueMessage:
    """The fields of one SQS record that the pipeline uses; a ``defect`` if it is odd."""
    # Lambda retries exactly the records that batchItemFailures names by messageId, and takes
    # an unknown or empty itemIdentifier as a failure of the whole batch. A record without a
    # usable messageId cannot be named, so failing the invocation is the only way not to lose
    # it: every record of the batch comes back, and the ledger skips those already written.
    if not isinstance(record, dict):
        raise MalformedEventError(f"an SQS record must be an object, got {json_type(record)}")
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise MalformedEventError("an SQS record has no messageId (a non-empty string)")
    attributes = record.get("attributes")
    group_id = attributes.get("MessageGroupId") if isinstance(attributes, dict) else None
    try:
        return QueueMessage(
            message_id,
            _body(record),
            _sent_timestamp(attributes),
            _group_id(group_id),
        )
    except InvalidMessageError as defect:
        # Its FIFO group, if readable, so that later messages of the group wait for it.
        group = group_id if isinstance(group_id, str) else None
        return QueueMessage(message_id, "", None, group, defect)


def _body(record: dict[str, Any]) -> str:
    body = record.get("body")
    if not isinstance(body, str):
        raise _malformed(f"body must be a string, got {json_type(body)}")
    return body


def _sent_timestamp(attributes: object) -> str | None:
    if not isinstance(attributes, dict):
        # Lambda always sends this map, with SentTimestamp: no date is guessed without it.
        raise _malformed(f"attributes must be an object, got {json_type(attributes)}")
    sent = attributes.get("SentTimestamp")
    if sent is not None and not isinstance(sent, str):
        raise InvalidMessageError(
            Reason.INVALID_SENT_TIMESTAMP, f"SentTimestamp must be a string, got {json_type(sent)}"
        )
    return sent


def _group_id(group_id: object) -> str | None:
    if group_id is not None and not isinstance(group_id, str):
        raise _malformed(f"MessageGroupId must be a string, got {json_type(group_id)}")
    return group_id


def _malformed(detail: str) -> InvalidMessageError:
    return InvalidMessageError(Reason.MALFORMED_RECORD, detail)
