"""botocore's DEBUG lines without their payloads: no data key, password, token or PII in a log.

At DEBUG, botocore logs every request and response in full: KMS ``Decrypt``'s plaintext data key,
``GetSecretValue``'s database password, the raw bodies ``ReceiveMessage`` returns to the drain,
and the signed headers with the role's session token. Lambda's advanced logging controls
(``ApplicationLogLevel: DEBUG``) set the root logger to DEBUG, so one console setting would put
all of that in CloudWatch. Levels cannot prevent it (whoever configures logging sets them, on
the root or on ``botocore`` itself), so :func:`install` puts a filter on each logger that formats
payloads. A logger's filters run on every record created on it, before any handler sees it,
whatever the levels; below DEBUG botocore creates none of these records, so they cost nothing.

The lines are kept, only their payloads go: which operation, which endpoint, the response's
size, status headers, retries and timings still show, which is what DEBUG is for. A line of
these loggers that this module does not know (a newer botocore than the Lambda runtime's) keeps
its numbers and loses every other argument: unknown means redacted.

Checked (botocore 1.44, boto3 1.44, urllib3 2.8, pg8000 1.31, Powertools 3.37; every logging
call of botocore and boto3 is listed by ``tests/function/unit/test_log_redaction.py``) and left
alone because they log no payload: ``botocore.hooks`` (event and handler names),
``botocore.retryhandler``, ``botocore.retries``, ``botocore.credentials`` (provider names,
expiry times), ``botocore.regions`` (region and endpoint parameters), ``botocore.session``
(config variable names and values such as the region), ``urllib3.connectionpool`` (host, port,
method, path, status, length), Powertools' own loggers (parameter names, metric names and
counts; the event only with ``log_event``, which the handler never sets). pg8000 and scramp do
not log at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

# The loggers (module names) whose records carry request parameters, bodies or signed headers.
PAYLOAD_LOGGERS = (
    "botocore.endpoint",  # request dicts and prepared requests: bodies, headers, session token
    "botocore.parsers",  # response headers and bodies: the data key, the secret, SQS bodies
    "botocore.auth",  # canonical request and string to sign: headers with the session token
    "botocore.awsrequest",  # the request body stream when rewound for a retry
    "botocore.handlers",  # error bodies of 200 responses, parsed errors, injected parameters
    "botocore.compress",  # the request body it could not measure
    "botocore.discovery",  # endpoint discovery's request parameters
    "botocore.utils",  # credential and metadata responses (IMDS, container credentials)
    "boto3.dynamodb.table",  # items of a batch writer
    "boto3.resources.action",  # resource calls' parameters and responses
    "boto3.resources.collection",  # collection calls' parameters
)

# Lines whose arguments are names, numbers and timings: kept exactly as botocore writes them.
SAFE_LINES = frozenset(
    {
        "Setting %s timeout as %s",
        "Response received to retry, sleeping for %s seconds",
        "HTTP request method: %s",
        "Compressing request with %s encoding.",
        "Unsupported compression encoding: %s",
        "Body type %s does not support compression.",
    }
)
# Exceptions worth their traceback: connection errors name the endpoint, not the payload.
# Any other exception attached to these loggers' records is reduced to its type: a
# ResponseParserError, for one, quotes the body it could not parse.
KEEP_EXCEPTION = frozenset({"Exception received when sending HTTP request."})
# Response headers shown with their values; the others keep their names only.
SHOWN_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "date",
        "connection",
        "server",
        "x-amzn-requestid",
        "x-amz-request-id",
        "x-amz-id-2",
    }
)


class Shown(str):
    """Text that formats as itself under ``%s`` and ``%r`` alike (no added quotes)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def redacted(value: object) -> object:
    """Numbers stay (sizes, counts, status codes, so ``%d`` still formats); the rest goes."""
    if value is None or isinstance(value, int | float):
        return value
    return Shown(f"<{type(value).__name__} redacted>")


def _size(body: object) -> str:
    try:
        return f"{len(body)} bytes"  # type: ignore[arg-type]
    except TypeError:
        return type(body).__name__


def _request_dict(operation: object, request: object) -> tuple[object, ...]:
    # Keeps the operation, e.g. "OperationModel(name=Decrypt)", and the body's size.
    body = request.get("body") if isinstance(request, Mapping) else None
    return (
        Shown(f"OperationModel(name={getattr(operation, 'name', '?')})"),
        Shown(f"{{body: <{_size(body)} redacted>, headers: <redacted>}}"),
    )


def _prepared_request(request: object) -> tuple[object, ...]:
    # Method and endpoint only: the path and query could hold names, headers hold the token.
    parts = urlsplit(str(getattr(request, "url", "")))
    method = getattr(request, "method", "?")
    return (
        Shown(
            f"<AWSPreparedRequest method={method}, url={parts.scheme}://{parts.netloc}/...,"
            f" body: <{_size(getattr(request, 'body', None))} redacted>, headers: <redacted>>"
        ),
    )


def _response_headers(headers: object) -> tuple[object, ...]:
    if not isinstance(headers, Mapping):
        return (redacted(headers),)
    shown = {
        name: value if str(name).lower() in SHOWN_HEADERS else Shown("<redacted>")
        for name, value in headers.items()
    }
    return (shown,)


def _response_body(body: object) -> tuple[object, ...]:
    return (Shown(f"<{_size(body)} redacted>"),)


# Known lines with a payload, rewritten to keep what is useful about them.
REWRITES: dict[str, Callable[..., tuple[object, ...]]] = {
    "Making request for %s with params: %s": _request_dict,
    "Sending http request: %s": _prepared_request,
    "Response headers: %r": _response_headers,
    "Response body:\n%r": _response_body,
}


class PayloadRedactor(logging.Filter):
    """Rewrites the records of a payload logger in place; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the arguments (and exception) that could carry a payload."""
        template = record.msg if isinstance(record.msg, str) else None
        if template is None:  # an object logged as the message: its text is unknown
            record.msg, record.args = f"<{type(record.msg).__name__} redacted>", ()
        elif template in REWRITES and record.args:
            args = (record.args,) if isinstance(record.args, Mapping) else tuple(record.args)
            try:
                record.args = REWRITES[template](*args)
            except TypeError:  # a different signature in another botocore version
                record.args = _redact_all(record.args)
        elif template not in SAFE_LINES and record.args:
            record.args = _redact_all(record.args)
        if record.exc_info and template not in KEEP_EXCEPTION:
            error = record.exc_info[1]
            record.msg = f"{record.msg} ({type(error).__name__}, details redacted)"
            record.exc_info, record.exc_text = None, None
        return True


def _redact_all(args: Any) -> Any:
    if isinstance(args, Mapping):  # one dict argument, or %(name)s formatting: same keys
        return {name: redacted(value) for name, value in args.items()}
    return tuple(redacted(value) for value in args)


def install() -> None:
    """Put the filter on every payload logger, once (idempotent, cheap at import)."""
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, PayloadRedactor) for existing in logger.filters):
            logger.addFilter(PayloadRedactor())
