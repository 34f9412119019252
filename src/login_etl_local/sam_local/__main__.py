"""``python -m login_etl_local.sam_local``: what ``make test-sam-local`` runs.

Exit code: pytest's, or 1 with one line saying why the run could not even start (no container
engine possible here, no CPython of the runtime's version, no Debian mirror...). It never
passes without having invoked the function.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from login_etl_local.sam_local import session
from login_etl_local.sam_local.debian import DebianError
from login_etl_local.sam_local.engine import EngineUnavailableError
from login_etl_local.sam_local.runtime_python import RuntimePythonError


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the session, turn known failures into one line."""
    parser = argparse.ArgumentParser(prog="python -m login_etl_local.sam_local")
    parser.add_argument("--sam", type=Path, required=True, help="the sam executable")
    parser.add_argument("--python", default="3.12", help="the Lambda runtime's Python version")
    parser.add_argument("--cache-dir", type=Path, default=session.default_cache_dir())
    parser.add_argument("--run-dir", type=Path, default=session.default_run_dir())
    parser.add_argument(
        "--runtime-python",
        default=os.environ.get("LAMBDA_IMAGE_PYTHON") or None,
        help="prefix of the CPython to put in the image (default: pyenv's, then PATH)",
    )
    parser.add_argument(
        "--localstack-python",
        default=os.environ.get("LOCALSTACK_PYTHON") or None,
        help="prefix of the CPython 3.13 for LocalStack's venv (default: pyenv's, then PATH)",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # the way out still cleans up
    options = session.Options(
        root=Path.cwd(),
        sam=args.sam.resolve(),
        python_version=args.python,
        cache_dir=args.cache_dir,
        run_dir=args.run_dir,
        runtime_python=args.runtime_python,
        localstack_python=args.localstack_python,
        pytest_args=args.pytest_args,
    )
    try:
        return session.run(options)
    except EngineUnavailableError as error:
        print(f"sam-local: FAILED: no container engine can run here: {error}", file=sys.stderr)
    except (DebianError, RuntimePythonError, RuntimeError) as error:
        print(f"sam-local: FAILED: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("sam-local: interrupted (everything started was stopped)", file=sys.stderr)
        return 130
    return 1


def _exit_on_signal(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
