"""`login-etl dlq redrive`: the function takes the dead letters, each under its own id, once.

Against the moto server and a real Postgres; the function runs in its own process, as
``login-etl run`` runs it (Lambda's ``Invoke`` is stubbed where its answers are the subject).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pg8000.native
import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from cfnlint.decode import cfn_yaml

from login_etl.handler import lambda_handler
from login_etl_cli import main as cli
from login_etl_cli.invocation import Invocation, LambdaFunction, encode_event
from login_etl_cli.local_stack import LocalStack, Provisioned, patched_environ
from login_etl_cli.redrive import FunctionFailedError, RedriveSummary, redrive
from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_cli.sqs_event import lambda_record
from login_etl_local.event_source_mapping import LocalContext, queue_is_empty
from login_etl_local.function_process import FunctionProcess
from login_etl_local.provisioning import provision
from tests.cli_helpers import login_etl, marked_commands, spawn, wait_for
from tests.sqs_helpers import receive_event

HOLD_S = 10  # the shortest --hold: the messages a killed redrive held come back after it
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(Path(__file__).resolve().parents[2] / "template.yaml"))


def logins(count: int, seed: int) -> list[str]:
    return [body for body, _ in generate_labelled(count, seed=seed, malformed_ratio=0)]


def dead_letter(queue: Provisioned, bodies: list[str], *, written: int = 0) -> dict[str, int]:
    """Send ``bodies`` through the queue into its DLQ (maxReceiveCount 1); user -> SentTimestamp.

    The first ``written`` of them are written by the function before they are dead-lettered, as
    when a delivery committed and its acknowledgement was lost.
    """
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.queue_url, bodies)
    sent: dict[str, int] = {}
    if written:
        event = receive_event(queue, written)
        assert lambda_handler(event, LocalContext()) == {"batchItemFailures": []}
        release(sqs, queue.queue_url, [r["receiptHandle"] for r in event["Records"]])
        for record in event["Records"]:
            user = json.loads(record["body"])["user_id"]
            sent[user] = int(record["attributes"]["SentTimestamp"])
    while not queue_is_empty(sqs, queue.queue_url):  # each receive after the first dead-letters
        for message in sqs.receive_message(
            QueueUrl=queue.queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        ).get("Messages", []):
            user = json.loads(message["Body"])["user_id"]
            sent[user] = int(message["Attributes"]["SentTimestamp"])
    return sent


def release(sqs: Any, queue_url: str, receipts: list[str]) -> None:
    for start in range(0, len(receipts), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(receipts[start : start + 10])
            ],
        )


def dlq_depth(queue: Provisioned) -> tuple[int, int]:
    """(visible, held) messages in the DLQ."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def day(sent_ms: int) -> date:
    return datetime.fromtimestamp(sent_ms / 1000, UTC).date()


def rows_by_user(db: pg8000.native.Connection) -> dict[str, list[date]]:
    found: dict[str, list[date]] = {}
    for user, created in db.run("SELECT user_id, create_date FROM user_logins"):
        found.setdefault(user, []).append(created)
    return found


def ledger_size(db: pg8000.native.Connection) -> int:
    if not db.run("SELECT to_regclass('login_etl_processed_messages') IS NOT NULL")[0][0]:
        return 0
    return int(db.run("SELECT count(*) FROM login_etl_processed_messages")[0][0])


def redrive_here(queue: Provisioned, sqs: Any = None, **options: Any) -> RedriveSummary:
    """``redrive`` in this process, the function in its own (as against the local stack)."""
    with FunctionProcess() as function:
        return redrive(
            sqs or boto3.client("sqs"),
            queue.dlq_url,
            queue.queue_arn,
            function,
            hold_s=HOLD_S,
            **options,
        )


@pytest.mark.max_receive_count(1)
def test_every_dead_letter_is_written_once_dated_by_its_login(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    bodies = logins(40, seed=31)
    sent = dead_letter(queue, bodies, written=15)  # 15 written before they were dead-lettered
    assert len(rows_by_user(db)) == 15

    summary = redrive_here(queue)

    assert (summary.handed, summary.deleted, summary.failed) == (40, 40, 0)
    rows = rows_by_user(db)
    assert rows == {user: [day(ms)] for user, ms in sent.items()}  # none lost, none twice
    assert ledger_size(db) == 40
    assert dlq_depth(queue) == (0, 0)


class AgedDeadLetters:
    """The DLQ as SQS shows it days later: the messages keep the SentTimestamp of their send."""

    def __init__(self, days: int) -> None:
        self._client = boto3.client("sqs")
        self._shift_ms = days * 86_400_000

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def receive_message(self, **kwargs: Any) -> Any:
        response = self._client.receive_message(**kwargs)
        for message in response.get("Messages", []):
            attributes = message["Attributes"]
            attributes["SentTimestamp"] = str(int(attributes["SentTimestamp"]) - self._shift_ms)
        return response


def test_a_redriven_login_keeps_the_day_it_was_sent(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    before = datetime.now(UTC)
    send_bodies(boto3.client("sqs"), queue.dlq_url, logins(3, seed=32))
    after = datetime.now(UTC)

    summary = redrive_here(queue, AgedDeadLetters(days=4))

    assert summary.deleted == 3
    sent_days = {(moment - timedelta(days=4)).date() for moment in (before, after)}
    dates = {d for dates in rows_by_user(db).values() for d in dates}
    assert len(dates) == 1
    assert dates <= sent_days  # four days ago, not the day of the redrive


class DeleteFailsOnce:
    """An SQS client whose first DeleteMessageBatch dies: the function's answer never landed."""

    def __init__(self) -> None:
        self._client = boto3.client("sqs")
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def delete_message_batch(self, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionResetError("interrupted")
        return self._client.delete_message_batch(**kwargs)


def test_a_batch_written_but_not_deleted_is_written_once_by_the_next_run(
    queue: Provisioned, db: pg8000.native.Connection
) -> None:
    bodies = logins(35, seed=33)
    send_bodies(boto3.client("sqs"), queue.dlq_url, bodies)

    with pytest.raises(ConnectionResetError):
        redrive_here(queue, DeleteFailsOnce(), batch_size=10)
    assert len(rows_by_user(db)) == 10  # the first batch is written, and still in the DLQ
    assert dlq_depth(queue) == (35, 0)  # released at once: nothing waits for the hold
    again = redrive_here(queue)

    assert (again.handed, again.deleted) == (35, 35)  # the ten a second time: acknowledged
    assert sorted(rows_by_user(db)) == sorted(json.loads(b)["user_id"] for b in bodies)
    assert all(len(dates) == 1 for dates in rows_by_user(db).values())
    assert ledger_size(db) == 35
    assert dlq_depth(queue) == (0, 0)


class InterruptedAt:
    """A function that acknowledges every batch until the ``n``-th, where Ctrl-C comes."""

    def __init__(self, n: int) -> None:
        self.calls = 0
        self._n = n

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.calls += 1
        if self.calls == self._n:
            raise KeyboardInterrupt
        return Invocation({"batchItemFailures": []})

    def __enter__(self) -> InterruptedAt:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_an_interrupted_redrive_leaves_every_undeleted_message_visible_at_once(
    queue: Provisioned,
) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.dlq_url, logins(40, seed=43))
    [peeked] = sqs.receive_message(
        QueueUrl=queue.dlq_url, VisibilityTimeout=0, AttributeNames=["All"]
    )["Messages"]
    record_size = len(encode_event(lambda_record(peeked, queue.queue_arn, "us-east-1"))) + 20
    summary = RedriveSummary()

    with pytest.raises(KeyboardInterrupt):
        redrive(
            sqs,
            queue.dlq_url,
            queue.queue_arn,
            InterruptedAt(3),
            max_event_bytes=2 * record_size,  # two records a batch: each receive carries some
            hold_s=300,  # they would stay invisible for five minutes, were they not released
            summary=summary,
        )

    # Two batches deleted; the third (in the function) and those received past it come back.
    assert summary.deleted == 4
    assert dlq_depth(queue) == (36, 0)


def test_a_redrive_killed_mid_run_and_run_again_loses_nothing_and_writes_nothing_twice(
    stack: LocalStack, queue: Provisioned, db: pg8000.native.Connection, tmp_path: Path
) -> None:
    bodies = logins(600, seed=34)
    send_bodies(boto3.client("sqs"), queue.dlq_url, bodies)
    names = {**stack.environment(), "QUEUE_URL": queue.queue_url, "DLQ_URL": queue.dlq_url}
    command = ("dlq", "redrive", "--batch-size", "25", "--hold", str(HOLD_S))

    with marked_commands() as (marks, running):
        process = spawn(*command, cwd=tmp_path, env={**names, **marks})
        wait_for(lambda: ledger_size(db) >= 25, "the first batch to be written")
        process.kill()  # SIGKILL: mid-run, whatever it was doing
        process.communicate()
        wait_for(lambda: running() == [], "the function's process to die with the command")

    written, (visible, held) = ledger_size(db), dlq_depth(queue)
    assert 25 <= written < 600  # it was killed mid-run
    assert written + visible + held >= 600  # each message written, or still in the DLQ
    at_once = login_etl(*command, cwd=tmp_path, env=names)  # what the killed run held waits
    assert at_once.returncode == 0, at_once.stderr
    wait_for(lambda: dlq_depth(queue)[1] == 0, "the held messages to come back")
    rerun = login_etl(*command, cwd=tmp_path, env=names)

    assert rerun.returncode == 0, rerun.stderr
    handed = re.search(r"^handed (\d+) .*: (\d+) deleted", rerun.stdout, re.MULTILINE)
    assert handed is not None, rerun.stdout
    assert handed[1] == handed[2]
    rows = rows_by_user(db)
    assert sorted(rows) == sorted(json.loads(b)["user_id"] for b in bodies)  # 0 lost
    assert sum(len(dates) for dates in rows.values()) == 600  # 0 doubled
    assert ledger_size(db) == 600
    assert dlq_depth(queue) == (0, 0)


def test_what_fails_validation_stays_unless_all_and_then_the_function_refuses_it(
    queue: Provisioned, db: pg8000.native.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})
    valid = logins(1, seed=35)
    send_bodies(boto3.client("sqs"), queue.dlq_url, [bad, bad, "not json", *valid])
    with patched_environ({"DLQ_URL": queue.dlq_url}):
        assert cli.main(["dlq", "redrive", "--hold", str(HOLD_S)]) == 0
        handed = capsys.readouterr().out.splitlines()
        assert cli.main(["dlq", "redrive", "--hold", str(HOLD_S), "--all"]) == 0
        forced = capsys.readouterr()

    assert handed[0] == (
        f"handed 1 message(s) of {queue.dlq_url} to the function run here (as login-etl run"
        " runs it) in 1 invocation(s): 1 deleted from the DLQ (written, or found written"
        " already), 0 reported failed (left in the DLQ)"
    )
    assert handed[1].startswith(
        f"left 3 message(s) that fail validation in {queue.dlq_url} (2 missing_keys"
    )
    assert "--all hands them over anyway" in handed[1]
    assert "oops" not in "\n".join(handed)  # reasons, never contents
    assert forced.out.splitlines()[0].startswith(f"handed 3 message(s) of {queue.dlq_url}")
    assert ": 0 deleted from the DLQ" in forced.out
    assert "3 reported failed (left in the DLQ)" in forced.out
    assert "warning: 3 of them fail validation" in forced.err
    assert len(rows_by_user(db)) == 1
    assert dlq_depth(queue) == (3, 0)


def test_messages_another_reader_holds_are_left_and_counted(
    queue: Provisioned, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.dlq_url, logins(3, seed=44))
    sqs.receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=1, VisibilityTimeout=300)
    with patched_environ({"DLQ_URL": queue.dlq_url}):
        assert cli.main(["dlq", "redrive", "--hold", str(HOLD_S)]) == 0

    out = capsys.readouterr().out
    assert ": 2 deleted from the DLQ" in out
    assert "1 message(s) of the DLQ are held by another reader" in out
    assert dlq_depth(queue) == (0, 1)


def test_a_failing_function_deletes_nothing_and_says_why(
    queue: Provisioned, capsys: pytest.CaptureFixture[str]
) -> None:
    send_bodies(boto3.client("sqs"), queue.dlq_url, logins(12, seed=36))
    # The function's cold start cannot read its data key: every invocation fails.
    broken = {"DLQ_URL": queue.dlq_url, "DATA_KEY_PARAMETER": "/login-etl-test/no-such-key"}
    with patched_environ(broken):
        code = cli.main(["dlq", "redrive", "--hold", str(HOLD_S)])

    out, err = capsys.readouterr()
    assert code == 1
    assert "12 message(s)" in out
    assert ": 0 deleted from the DLQ" in out
    [line] = [line for line in err.splitlines() if line.startswith("login-etl: the function")]
    assert line.startswith("login-etl: the function failed (Unhandled: ")
    assert "none of the batch's 12 messages was deleted from the DLQ" in line
    assert dlq_depth(queue) == (12, 0)  # visible again at once


class Answers:
    """A function that records each event and answers as told (the answers are the subject)."""

    def __init__(self, answer: Any = None, error: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._answer, self._error = answer, error

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.events.append(event)
        answer = {"batchItemFailures": []} if self._answer is None else self._answer
        return Invocation(answer, self._error)

    def __enter__(self) -> Answers:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"errorType": "OperationalError", "errorMessage": "down"}, "Unhandled"),
        ({"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"id": "x"}]}, None),
        ({"written": 3}, None),
        ("OK", None),
    ],
)
def test_an_error_or_an_answer_of_another_shape_deletes_nothing(
    queue: Provisioned, answer: Any, error: str | None
) -> None:
    send_bodies(boto3.client("sqs"), queue.dlq_url, logins(3, seed=37))
    summary = RedriveSummary()

    with pytest.raises(FunctionFailedError, match="none of the batch's 3 messages was deleted"):
        redrive(
            boto3.client("sqs"),
            queue.dlq_url,
            queue.queue_arn,
            Answers(answer, error),
            hold_s=HOLD_S,
            summary=summary,
        )

    assert (summary.handed, summary.deleted) == (3, 0)
    assert dlq_depth(queue) == (3, 0)


def test_the_event_is_what_lambda_delivers_from_the_source_queue(queue: Provisioned) -> None:
    sqs = boto3.client("sqs")
    body = logins(1, seed=38)[0]
    message_id = sqs.send_message(
        QueueUrl=queue.dlq_url,
        MessageBody=body,
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "mobile"}},
    )["MessageId"]
    function = Answers()

    redrive(sqs, queue.dlq_url, queue.queue_arn, function, hold_s=HOLD_S)

    [[record]] = [event["Records"] for event in function.events]
    assert record["messageId"] == message_id  # the ledger's key: the id it was first sent with
    assert record["body"] == body
    assert record["attributes"]["SentTimestamp"].isdigit()
    assert record["messageAttributes"]["origin"]["stringValue"] == "mobile"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.queue_arn  # the queue the function is mapped to
    assert record["awsRegion"] == "us-east-1"
    assert len(record["md5OfBody"]) == 32


def test_a_fifo_dlq_is_handed_over_in_each_groups_order(stack: LocalStack) -> None:
    sqs = boto3.client("sqs")
    fifo = provision(
        sqs,
        boto3.client("kms"),
        boto3.client("ssm"),
        queue_name=f"login-redrive-{uuid.uuid4().hex[:8]}.fifo",
    )
    sent = {
        group: send_bodies(sqs, fifo.dlq_url, logins(6, seed=seed), group_id=group)
        for group, seed in (("g", 45), ("h", 46))
    }
    function = Answers()

    summary = redrive(sqs, fifo.dlq_url, fifo.queue_arn, function, batch_size=4, hold_s=HOLD_S)

    handed: dict[str, list[str]] = {}
    for event in function.events:
        for record in event["Records"]:
            handed.setdefault(record["attributes"]["MessageGroupId"], []).append(
                record["messageId"]
            )
    assert handed == sent
    assert summary.deleted == 12
    assert all(len(event["Records"]) <= 4 for event in function.events)


def test_batches_are_bounded_by_count_and_by_the_payload_limit(queue: Provisioned) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.dlq_url, logins(23, seed=39))
    by_count = Answers()
    redrive(sqs, queue.dlq_url, queue.queue_arn, by_count, batch_size=10, hold_s=HOLD_S)
    send_bodies(sqs, queue.dlq_url, [*logins(23, seed=40), "x" * 6000])
    by_size = Answers()
    limit = 4000  # room for about ten records, not for the 6,000-byte one

    summary = redrive(
        sqs, queue.dlq_url, queue.queue_arn, by_size, max_event_bytes=limit, hold_s=HOLD_S
    )

    assert [len(event["Records"]) for event in by_count.events] == [10, 10, 3]
    assert all(len(encode_event(event)) <= limit for event in by_size.events)
    assert len(by_size.events) >= 3
    assert sum(len(event["Records"]) for event in by_size.events) == 23
    assert (summary.deleted, summary.too_large) == (23, 1)
    assert dlq_depth(queue) == (1, 0)  # the one too large to hand over, left


def stubbed_lambda() -> tuple[Any, Stubber]:
    client = boto3.client("lambda", config=Config(retries={"total_max_attempts": 1}))
    return client, Stubber(client)


def payload(answer: object) -> StreamingBody:
    raw = json.dumps(answer).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_through_lambda_invoke_only_the_unreported_are_deleted_with_the_policys_rights(
    queue: Provisioned,
) -> None:
    sqs = boto3.client("sqs")
    ids = send_bodies(sqs, queue.dlq_url, logins(5, seed=41))
    client, stubber = stubbed_lambda()
    stubber.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "Payload": payload({"batchItemFailures": [{"itemIdentifier": ids[2]}]}),
        },
        {"FunctionName": "login-etl-fn", "InvocationType": "RequestResponse", "Payload": ANY},
    )
    calls: list[str] = []
    sqs.meta.events.register("before-call.sqs", lambda model, **_: calls.append(model.name))

    with stubber:
        summary = redrive(
            sqs,
            queue.dlq_url,
            queue.queue_arn,
            LambdaFunction("login-etl-fn", client),
            hold_s=HOLD_S,
        )

    assert (summary.deleted, summary.failed) == (4, 1)
    left = sqs.receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["MessageId"] for m in left] == [ids[2]]
    # Every SQS call is one the operators' policy allows on the DLQ (batch calls count as one).
    allowed = dict(policy_actions("HoldAndDeleteDeadLetters"))
    called = {f"sqs:{name.removesuffix('Batch')}" for name in calls}
    assert called <= set(allowed)


@pytest.mark.parametrize(
    ("stub", "message"),
    [
        (
            lambda s: s.add_response(
                "invoke",
                {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": payload({"errorType": "OperationalError", "errorMessage": "down"}),
                },
            ),
            "the function failed (Unhandled: OperationalError: down)",
        ),
        (
            lambda s: s.add_client_error(
                "invoke", service_error_code="TooManyRequestsException", http_status_code=429
            ),
            "Lambda throttled the invocation (TooManyRequestsException)",
        ),
    ],
)
def test_through_lambda_invoke_an_error_or_a_throttle_deletes_nothing(
    queue: Provisioned, stub: Any, message: str
) -> None:
    sqs = boto3.client("sqs")
    send_bodies(sqs, queue.dlq_url, logins(4, seed=42))
    client, stubber = stubbed_lambda()
    stub(stubber)

    with stubber, pytest.raises(FunctionFailedError) as failed:
        redrive(sqs, queue.dlq_url, queue.queue_arn, LambdaFunction("fn", client), hold_s=HOLD_S)

    assert str(failed.value).startswith(message)
    assert dlq_depth(queue) == (4, 0)


def policy_actions(sid: str) -> list[tuple[str, Any]]:
    """(action, resource) of one statement of the operators' redrive policy."""
    document = TEMPLATE["Resources"]["DlqRedrivePolicy"]["Properties"]["PolicyDocument"]
    [statement] = [s for s in document["Statement"] if s["Sid"] == sid]
    actions = (
        statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    )
    return [(action, statement["Resource"]) for action in actions]


def test_the_operators_may_invoke_this_function_only_and_need_no_key() -> None:
    resources = TEMPLATE["Resources"]
    granting_invoke = [
        (name, statement)
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in str(statement["Action"])
    ]
    redrive_policy = resources["DlqRedrivePolicy"]["Properties"]["PolicyDocument"]["Statement"]

    assert granting_invoke == [
        (
            "DlqRedrivePolicy",
            {
                "Sid": "InvokeThisFunctionOnly",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": {"Fn::GetAtt": ["LoginEtlFunction", "Arn"]},
            },
        )
    ]
    assert not [s for s in redrive_policy if "kms:" in str(s["Action"])]
    assert policy_actions("NameTheSourceQueue") == [
        ("sqs:GetQueueAttributes", {"Fn::GetAtt": ["LoginQueue", "Arn"]})
    ]
    assert all(
        resource == {"Fn::GetAtt": ["LoginDeadLetterQueue", "Arn"]}
        for _, resource in policy_actions("HoldAndDeleteDeadLetters")
    )
