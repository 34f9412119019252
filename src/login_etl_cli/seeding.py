"""Sending message bodies to a queue, ten per SendMessageBatch, failing loudly on any loss.

Part of the CLI (``login-etl seed`` sends to whatever queue the target names, AWS's included;
``--file`` is read with ``bodies_from_text``); the local stack's ``run`` and the tests use it
from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

_SQS_BATCH = 10


def send_bodies(
    sqs: SQSClient,
    queue_url: str,
    bodies: Sequence[str],
    group_id: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Send every body as one message, in order; return their MessageIds. Raise on refusal.

    ``on_progress``: called with the number sent so far after each batch of ten.
    """
    ids: list[str] = []
    for start in range(0, len(bodies), _SQS_BATCH):
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for offset, body in enumerate(bodies[start : start + _SQS_BATCH]):
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(offset), "MessageBody": body}
            if group_id is not None:
                entry["MessageGroupId"] = group_id
                entry["MessageDeduplicationId"] = f"{group_id}-{start + offset}"
            entries.append(entry)
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            codes = sorted({f["Code"] for f in response["Failed"]})
            raise RuntimeError(f"SQS refused {len(response['Failed'])} messages: {codes}")
        by_entry = {entry["Id"]: entry["MessageId"] for entry in response["Successful"]}
        ids += [by_entry[entry["Id"]] for entry in entries]
        if on_progress is not None:
            on_progress(len(ids))
    return ids


def bodies_from_text(text: str) -> list[str]:
    """A JSON array of messages (each sent as ``json.dumps``), or one message per line as is.

    Lines are sent unchanged, so that a file can hold malformed messages on purpose.
    """
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return [line for line in text.splitlines() if line.strip()]
    try:
        items = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"starts with '[' but is not a JSON array (line {error.lineno}: {error.msg})"
        ) from None
    return [json.dumps(item) for item in items]
