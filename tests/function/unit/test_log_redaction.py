"""botocore at DEBUG, through its real request pipeline (moto in-process), logs no payload.

Also an audit of botocore's and boto3's source: every logging call that formats something that
could be a payload is either on a logger ``log_redaction`` filters or reviewed below, so an
upgrade that adds one elsewhere fails here instead of leaking.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import logging
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore
import botocore.exceptions
import botocore.parsers
import pytest

from login_etl.adapters import aws, log_redaction  # noqa: F401 - importing aws installs them

SECRET = "S3cr3t-Passw0rd-of-the-test"
RAW_IP = "203.0.113.77"


class Everything(logging.Handler):
    """Every record, formatted, with its arguments and exception."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exception = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        self.lines.append(f"{record.name}: {record.getMessage()} {record.args!r} {exception}")


@pytest.fixture
def debug_root() -> Iterator[Everything]:
    """Root and botocore at DEBUG, and a stream handler on botocore as boto3's helper adds."""
    root, botocore_logger = logging.getLogger(), logging.getLogger("botocore")
    saved = root.level, botocore_logger.level, list(botocore_logger.handlers)
    capture, stream = Everything(), io.StringIO()
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    boto3.set_stream_logger("botocore", logging.DEBUG)
    botocore_logger.handlers[-1].setStream(stream)  # type: ignore[attr-defined]
    yield capture
    capture.lines.append(stream.getvalue())
    root.removeHandler(capture)
    root.setLevel(saved[0])
    botocore_logger.setLevel(saved[1])
    botocore_logger.handlers[:] = saved[2]


def test_debug_lines_keep_the_operation_and_lose_the_payload(
    in_process_aws: None, debug_root: Everything
) -> None:
    session = boto3.session.Session()
    kms, secrets, sqs = (
        session.client("kms"),
        session.client("secretsmanager"),
        session.client("sqs"),
    )
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    wrapped = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["CiphertextBlob"]
    plaintext = kms.decrypt(CiphertextBlob=wrapped)["Plaintext"]
    secrets.create_secret(Name="db", SecretString=json.dumps({"password": SECRET}))
    assert SECRET in secrets.get_secret_value(SecretId="db")["SecretString"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"ip": RAW_IP}))
    assert RAW_IP in sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"]

    text = "\n".join(debug_root.lines)
    for needle in (
        SECRET,
        RAW_IP,
        "SessionTokenOfTheTest",
        base64.b64encode(plaintext).decode(),
        repr(plaintext)[2:-1],
    ):
        assert needle not in text
    # The lines themselves remain: what was called, where, how much came back.
    assert "Making request for OperationModel(name=Decrypt) with params: {body: <" in text
    assert "Sending http request: <AWSPreparedRequest method=POST, url=https://kms." in text
    assert "Response body:\n<" in text
    assert "bytes redacted>" in text
    assert "'x-amzn-requestid': '" in text


def record(name: str, msg: object, *args: object, error: Exception | None = None) -> str:
    """A record as botocore would create it on ``name``, filtered and formatted."""
    exc_info = (type(error), error, error.__traceback__) if error else None
    made = logging.getLogger(name).makeRecord(name, logging.DEBUG, "f", 1, msg, args, exc_info)
    assert log_redaction.PayloadRedactor().filter(made)
    return logging.Formatter("%(message)s").format(made)


def test_unknown_lines_keep_numbers_and_lose_everything_else() -> None:
    assert record("botocore.endpoint", "New line: %s of %d", SECRET, 42) == (
        "New line: <str redacted> of 42"
    )
    assert record("botocore.parsers", "As a mapping: %(body)s", {"body": SECRET}) == (
        "As a mapping: <str redacted>"
    )
    assert record("botocore.parsers", {"body": SECRET}) == "<dict redacted>"
    assert SECRET not in record("botocore.handlers", "Headers: %r", {"Authorization": SECRET})


def test_exceptions_that_quote_a_body_lose_their_text() -> None:
    error = botocore.parsers.ResponseParserError(f"invalid XML received:\n{SECRET}")
    line = record(
        "botocore.parsers", "Exception caught when parsing error response body:", error=error
    )
    assert SECRET not in line
    assert line.endswith("(ResponseParserError, details redacted)")


def test_connection_errors_keep_their_traceback() -> None:
    error = botocore.exceptions.EndpointConnectionError(endpoint_url="https://kms.example")
    line = record("botocore.endpoint", "Exception received when sending HTTP request.", error=error)
    assert "Could not connect to the endpoint URL" in line


def test_importing_the_client_module_installs_the_filters_once() -> None:
    """A fresh interpreter, as in the Lambda artifact: the import alone installs them."""
    script = (
        "import logging, login_etl.adapters.aws as aws\n"
        "aws.log_redaction.install()\n"
        "print({n: [type(f).__name__ for f in logging.getLogger(n).filters]"
        " for n in aws.log_redaction.PAYLOAD_LOGGERS})"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    filters = ast.literal_eval(result.stdout)
    assert filters == {name: ["PayloadRedactor"] for name in log_redaction.PAYLOAD_LOGGERS}


def logging_calls(package: Path, prefix: str) -> Iterator[tuple[str, str, list[str], bool]]:
    """(module, template source, argument sources, has exc_info) of each logging call."""
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in ("data", "docs"):
            continue
        module = ".".join((prefix, *relative.with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("logger", "LOG", "log", "LOGGER")
                and node.func.attr in ("debug", "info", "warning", "error", "exception", "log")
                and node.args
            ):
                first = 1 if node.func.attr == "log" else 0
                template = ast.unparse(node.args[first]) if len(node.args) > first else ""
                arguments = [ast.unparse(a) for a in node.args[first + 1 :]]
                exc_info = any(k.arg == "exc_info" for k in node.keywords)
                yield module, template, arguments, exc_info


# Words that name payloads, credentials or their carriers in botocore's argument expressions.
PAYLOAD_WORDS = (
    "body", "param", "request", "response", "header", "credential", "sign", "canonical",
    "kwargs", "token", "secret", "item", "value", "data", "text", "payload", "content", "msg",
)  # fmt: skip

# Logging calls outside the filtered loggers that match PAYLOAD_WORDS, each read and judged.
REVIEWED = {
    ("botocore.credentials", "'Found credentials from IAM Role: %s'"): "a role name",
    ("botocore.credentials", "msg"): "a fixed sentence about refresh",
    ("botocore.credentials", "'Refreshing temporary credentials failed during %s refresh period.'"):
        "period name; the exception is the refresh call's error",
    ("botocore.credentials", "'Error retrieving container metadata: %s'"):
        "a connection error of the credentials endpoint",
    ("botocore.endpoint_provider", "depr_str"): "a deprecation notice",
    ("botocore.history", "'Exception raised in %s.'"): "a handler's exception (CLI history)",
    ("botocore.httpsession", "message"): "a fixed sentence; a urllib3 connection error",
    ("botocore.monitoring", "'Truncating following value to maximum length of %s: %s'"):
        "client-side monitoring (off unless AWS_CSM_ENABLED): API names and codes",
    ("botocore.monitoring", "'Exception %s raised by client monitor in handling event %s'"):
        "client-side monitoring's own error",
    ("botocore.paginate",
     "'Attempting to fall back to old starting token parser. For token: %s'"):
        "a pagination token, no value",
    ("botocore.regions", "'Calling endpoint provider with parameters: %s'"):
        "region, FIPS/dual-stack flags, endpoint URL",
    ("botocore.regions",
     '\'Selecting from endpoint provider\\\'s list of auth schemes: %s. User selected auth scheme is: "%s"\''):  # noqa: E501
        "auth scheme names",
    ("botocore.regions", '\'Selected auth type "%s" as "%s" with signing context params: %s\''):
        "signing region and service name",
    ("botocore.retries.adaptive",
     "'Throttling response received, new send rate: %s measured rate: %s, token bucket capacity available: %s'"):  # noqa: E501
        "rates",
    ("botocore.retries.standard", "'Invalid %s header value: %s, ignoring. Error: %s'"):
        "a Retry-After value",
    ("botocore.retryhandler", "'crc32 check skipped, the %s header is not in the http response.'"):
        "a header name",
    ("botocore.retryhandler", "'retry needed, retryable exception caught: %s'"):
        "a connection error",
    ("botocore.session", "'Setting config variable for %s to %r'"):
        "region, profile and such; credentials are never config variables",
    ("botocore.session",
     "'Ignoring the following credential-related values which were set without an access key id and secret key on the session or client: %s'"):  # noqa: E501
        "the names of the ignored values",
    ("botocore.tokens", "msg"): "a fixed sentence about SSO token refresh",
    ("botocore.tokens", "'Refreshing token failed during the %s refresh period.'"): "period name",
    ("botocore.tokens", "'SSO token refresh attempt failed'"): "the refresh call's error",
    ("boto3.resources.factory", "'Loading %s:%s'"): "service and resource names",
    ("boto3.resources.model", "'Unknown parameter options found: %s'"): "model definition keys",
}  # fmt: skip


def test_every_logging_call_that_could_format_a_payload_is_filtered_or_reviewed() -> None:
    filtered = set(log_redaction.PAYLOAD_LOGGERS)
    unreviewed = set()
    for package, prefix in ((Path(botocore.__file__).parent, "botocore"),
                            (Path(boto3.__file__).parent, "boto3")):  # fmt: skip
        for module, template, arguments, exc_info in logging_calls(package, prefix):
            suspicious = (
                exc_info
                or not template.startswith(("'", '"'))
                or any(word in argument.lower() for argument in arguments for word in PAYLOAD_WORDS)
            )
            if suspicious and module not in filtered and (module, template) not in REVIEWED:
                unreviewed.add((module, template))
    assert sorted(unreviewed) == []


def test_the_known_lines_still_exist_in_this_botocore() -> None:
    """A renamed line is still redacted (unknown means redacted), but loses its useful part."""
    source = "\n".join(
        p.read_text() for p in Path(botocore.__file__).parent.glob("*.py") if p.is_file()
    )
    known = {*log_redaction.REWRITES, *log_redaction.SAFE_LINES, *log_redaction.KEEP_EXCEPTION}
    missing = [line for line in known if repr(line)[1:-1] not in source]
    assert missing == [], f"botocore {botocore.__version__} on {sys.version_info[:2]}"
