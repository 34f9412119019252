"""The benchmark's "typical" handler: what a careful engineer writes by hand.

Powertools' ``BatchProcessor`` with a record handler that validates, masks with
``Fernet.encrypt`` (randomised: it would hide duplicates, but it is what people write) and
INSERTs one row, one transaction per batch. Correct and readable; it is only here to be measured
against, never deployed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pg8000.native
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from cryptography.fernet import Fernet

REQUIRED = {"user_id", "app_version", "device_type", "ip", "locale", "device_id"}
INSERT = (
    "INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale,"
    " app_version, create_date) VALUES (:user_id, :device_type, :ip, :device, :locale,"
    " :version, CURRENT_DATE)"
)


def make_typical_handler(
    conn: pg8000.native.Connection, fernet_key: bytes
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler bound to one connection and one Fernet key."""
    fernet = Fernet(fernet_key)
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> None:
        login = json.loads(record.body)
        if not isinstance(login, dict) or set(login) != REQUIRED:
            raise ValueError("not a login")
        ipaddress.ip_address(login["ip"])
        major, minor, *patch = (int(part) for part in login["app_version"].split("."))
        conn.run(
            INSERT,
            user_id=login["user_id"],
            device_type=login["device_type"],
            ip=fernet.encrypt(login["ip"].encode()).decode(),
            device=fernet.encrypt(login["device_id"].encode()).decode(),
            locale=login["locale"],
            version=major * 1_000_000 + minor * 1_000 + (patch[0] if patch else 0),
        )

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        conn.run("START TRANSACTION")
        try:
            response = process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        except Exception:
            conn.run("ROLLBACK")
            raise
        conn.run("COMMIT")
        return dict(response)

    return handler
