"""Running ``login-etl`` as a user does: a subprocess, without the test session's stack."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# The session fixture's stack, which the command must not see: it finds or starts its own.
STACK_VARIABLES = ("AWS_ENDPOINT_URL", "DATABASE_URL", "QUEUE_URL", "DLQ_URL", "DATA_KEY_PARAMETER")


def login_etl(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``login-etl ARGS`` in ``cwd`` (where ``stack up`` keeps its state), output captured.

    ``env`` adds variables after the session's stack ones were removed.
    """
    env = {**{k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "login_etl_tools.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )
