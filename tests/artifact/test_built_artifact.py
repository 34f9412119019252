"""The artifact SAM deploys: what it holds, and that it runs when imported on its own.

``make test`` runs ``sam build`` first (.aws-sam/build). Its wheels are for the Lambda runtime
(CPython 3.12, aarch64), which cannot be imported here, so the same Makefile recipe also
builds the artifact for this machine's Python and platform, and a fresh interpreter that sees
only that folder (plus boto3, as the Lambda runtime provides it) answers every event in events/.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pg8000.native
import pytest

from login_etl_cli.sample_data import generate_labelled
from login_etl_cli.seeding import send_bodies
from login_etl_local.provisioning import Provisioned

ROOT = Path(__file__).resolve().parents[2]
SAM_ARTIFACT = ROOT / ".aws-sam" / "build" / "LoginEtlFunction"
EM_AARCH64 = 183  # ELF e_machine
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3")
EVENTS = ("sqs-batch.json", "sqs-fifo-batch.json", "scheduled.json", "prune-ledger.json")


def pinned() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(re.findall(r"^([\w-]+)==(\S+)", "\n".join(lines), re.MULTILINE))


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def test_the_sam_artifact_is_built_for_the_lambda_runtime() -> None:
    assert (SAM_ARTIFACT / "login_etl" / "handler.py").is_file(), "run `make build` first"
    extensions = list(SAM_ARTIFACT.rglob("*.so"))
    assert extensions
    assert {elf_machine(so) for so in extensions} == {EM_AARCH64}
    assert all("cpython-312" in so.name or ".abi3." in so.name for so in extensions)
    assert not [name for name in RUNTIME_PROVIDED if (SAM_ARTIFACT / name).exists()]
    assert not list(SAM_ARTIFACT.rglob("__pycache__"))
    for name, version in pinned().items():
        if name != "boto3":
            dist = name.replace("-", "_")
            assert (SAM_ARTIFACT / f"{dist}-{version}.dist-info").is_dir(), (name, version)


def test_the_sam_artifact_stays_lean() -> None:
    size = sum(p.stat().st_size for p in SAM_ARTIFACT.rglob("*") if p.is_file())
    assert size < 30 * 2**20  # 22 MB measured; docs/deploying.md reports it


@pytest.fixture(scope="module")
def local_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same recipe for this interpreter, and boto3 standing in for the runtime's copy."""
    base = tmp_path_factory.mktemp("artifact")
    artifact, runtime = base / "task", base / "runtime"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "build-LoginEtlFunction",
            f"ARTIFACTS_DIR={artifact}",
            f"LAMBDA_PYTHON={version}",
            f"LAMBDA_PLATFORM=manylinux2014_{platform.machine()}",
            f"PYTHON={sys.executable}",
        ],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(runtime),
            f"boto3=={pinned()['boto3']}",
        ],
        check=True,
    )
    return artifact, runtime


INVOKE_EVERY_EVENT = """
import json, logging, sys, uuid
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # as ApplicationLogLevel: DEBUG
import login_etl.handler as h
class Context:
    function_name = "login-etl"; function_version = "$LATEST"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:login-etl"
    aws_request_id = str(uuid.uuid4()); log_group_name = "/aws/lambda/login-etl"
    log_stream_name = "local"
    def get_remaining_time_in_millis(self): return 60_000
responses = {name: h.lambda_handler(json.load(open(path)), Context()) for name, path in
             zip(sys.argv[1::2], sys.argv[2::2])}
print(json.dumps({"handler": h.__file__, "boto3": __import__("boto3").__file__,
                  "responses": responses}))
"""


def test_the_artifact_alone_answers_every_event(
    local_artifact: tuple[Path, Path], queue: Provisioned, db: pg8000.native.Connection
) -> None:
    artifact, runtime = local_artifact
    bodies = [body for body, _ in generate_labelled(10, seed=9, malformed_ratio=0)]
    send_bodies(boto3.client("sqs"), queue.queue_url, bodies)
    args = [arg for name in EVENTS for arg in (name, str(ROOT / "events" / name))]
    env = {
        **os.environ,
        "PYTHONPATH": f"{artifact}{os.pathsep}{runtime}",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }

    result = subprocess.run(
        # -S: no site-packages, so nothing from this project's venv can be imported.
        [sys.executable, "-S", "-c", INVOKE_EVERY_EVENT, *args],
        cwd=artifact.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout.splitlines()[-1])
    assert output["handler"].startswith(str(artifact))
    assert output["boto3"].startswith(str(runtime))
    responses = output["responses"]
    assert len(responses["sqs-batch.json"]["batchItemFailures"]) == 2
    assert len(responses["sqs-fifo-batch.json"]["batchItemFailures"]) == 2
    assert responses["scheduled.json"]["written"] == 10
    assert responses["prune-ledger.json"]["stoppedBecause"] == "done"  # nothing old to forget
    assert db.run("SELECT count(*) FROM user_logins") == [[4 + 3 + 10]]
    # botocore logged at DEBUG (the drain's ReceiveMessage included), without the bodies.
    raw = {json.loads(body)[field] for body in bodies for field in ("ip", "device_id")}
    assert sorted(value for value in raw if value in result.stderr) == []
    assert "botocore.parsers:Response body:\n<" in result.stderr
