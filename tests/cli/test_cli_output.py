"""Output that tells the truth: this run's summary, live progress, whole tokens, one key-id form.

One `stack up` for the module, reused by every test, as an operator reuses theirs.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from login_etl_cli.sample_data import generate_labelled
from login_etl_local.postgres_server import find_bin_dir
from tests.cli_helpers import HANG_GUARD_S, command_env, exports, login_etl, marked_commands

# The page whose `psql ... | login-etl unmask -` line the test below runs as it is written.
PSQL_EXAMPLE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory with a running `stack up`, and its exports."""
    directory = tmp_path_factory.mktemp("stack")
    with marked_commands() as (marker, running):
        up = login_etl("stack", "up", cwd=directory, env=marker)
        assert up.returncode == 0, up.stderr
        try:
            yield directory, exports(up.stdout)
        finally:
            login_etl("stack", "down", cwd=directory)
        assert running() == []


def figure(output: str, label: str) -> int:
    match = re.search(rf"^\s+{re.escape(label)}\s+(\d+)$", output, re.MULTILINE)
    assert match, f"no {label!r} in:\n{output}"
    return int(match.group(1))


def counts(count: int, seed: int) -> tuple[int, int, set[str]]:
    """(valid, malformed, user ids of the valid ones) of what `run --count --seed` sends."""
    labelled = generate_labelled(count, seed)
    valid = [json.loads(body)["user_id"] for body, ok in labelled if ok]
    return len(valid), count - len(valid), set(valid)


def test_the_run_summary_is_this_runs(stack_dir: tuple[Path, dict[str, str]]) -> None:
    directory, _ = stack_dir
    first = login_etl("run", "--count", "200", "--seed", "41", cwd=directory)
    assert first.returncode == 0, first.stderr

    second = login_etl("run", "--count", "300", "--seed", "42", cwd=directory)

    assert second.returncode == 0, second.stderr
    valid_1, malformed_1, _ = counts(200, 41)
    valid_2, malformed_2, users_2 = counts(300, 42)
    assert malformed_1  # both runs dead-letter something
    assert malformed_2
    out = second.stdout
    assert figure(out, "rows written to user_logins") == valid_2, (first.stdout, out)
    assert figure(out, "messages dead-lettered") == malformed_2, (first.stdout, out)
    section = out.split("dead-lettered by this run, and why")[1].split("\n\n")[0]
    reasons = section.splitlines()[1:]  # after the heading's own line
    assert sum(int(line.split()[0]) for line in reasons) == malformed_2
    # What was there is counted apart, not as this run's.
    assert figure(out, "rows in user_logins") >= valid_1
    assert figure(out, "messages in the dead-letter queue") >= malformed_1
    sample = re.findall(r"^  ([0-9a-f-]{36})  ", out, re.MULTILINE)
    assert sample
    assert set(sample) <= users_2


def test_report_gives_whole_tokens_that_unmask_takes(
    stack_dir: tuple[Path, dict[str, str]],
) -> None:
    directory, _ = stack_dir
    login_etl("run", "--count", "100", "--seed", "43", cwd=directory)

    short = login_etl("report", "--top", "1", cwd=directory)
    full = login_etl("report", "--top", "1", "--full-tokens", cwd=directory)

    assert short.returncode == 0, short.stderr
    assert full.returncode == 0, full.stderr
    heading = "devices seen in more than one login (top 1)\n"
    shortened = short.stdout.split(heading)[1].splitlines()[0].split()[-1]
    token = full.stdout.split(heading)[1].splitlines()[0].split()[-1]
    assert shortened.endswith("...")
    assert token.startswith(shortened.removesuffix("..."))
    assert len(token) > len(shortened)
    assert re.search(r"^  \d+\.\d+\.\d+ +\d+$", full.stdout, re.MULTILINE)  # decoded versions
    unmasked = login_etl("unmask", token, "--reason", "test", cwd=directory)
    assert unmasked.returncode == 0, unmasked.stderr
    assert json.loads(unmasked.stdout)["value"]


def test_key_ids_have_one_form(stack_dir: tuple[Path, dict[str, str]]) -> None:
    directory, _ = stack_dir
    run = login_etl("run", "--count", "20", "--seed", "44", cwd=directory)
    keys = login_etl("keys", "list", cwd=directory)

    in_summary = set(re.findall(r"\(key id (\w+)\)", run.stdout))
    [listed] = [line.split()[0] for line in keys.stdout.splitlines() if line.endswith("current")]
    assert in_summary == {listed}
    assert re.fullmatch(r"[0-9a-f]{8}", listed)


def on_a_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """`login-etl ARGS` with stderr on a pseudo-terminal (as a user sees it); its stderr."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "login_etl_cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=command_env(),
        cwd=cwd,
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(controller, 4096)
            except OSError:  # the terminal's other end closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code = process.wait(timeout=HANG_GUARD_S)
    reader.join(timeout=HANG_GUARD_S)
    os.close(controller)
    return code, b"".join(chunks).decode(errors="replace")


def test_progress_shows_with_no_seed_and_through_the_retries(
    stack_dir: tuple[Path, dict[str, str]],
) -> None:
    directory, _ = stack_dir
    _, malformed, _ = counts(150, 45)
    assert malformed
    seeded = login_etl("seed", "--count", "150", "--seed", "45", cwd=directory)
    assert seeded.returncode == 0, seeded.stderr

    code, terminal = on_a_terminal("run", "--no-seed", "--mode", "schedule", cwd=directory)

    assert code == 0, terminal
    lines = [line.strip() for line in re.split(r"[\r\n]", terminal) if line.strip()]
    settled = [line for line in lines if "settled" in line]
    assert any("/150 settled" in line for line in settled), terminal
    assert any("failing, being retried" in line for line in settled), lines
    waiting = [line for line in settled if "failing" in line]
    assert len({line.split("  ")[1] for line in waiting}) > 1  # the time moves while it waits


def test_the_documented_psql_example_works(stack_dir: tuple[Path, dict[str, str]]) -> None:
    directory, pasted = stack_dir
    login_etl("run", "--count", "20", "--seed", "46", cwd=directory)
    [line] = [ln for ln in PSQL_EXAMPLE_PAGE.read_text().splitlines() if ln.startswith("psql ")]
    command = line.split("  #")[0].replace(".venv/bin/login-etl", "login_etl")
    script = f'login_etl() {{ "{sys.executable}" -m login_etl_cli "$@"; }}\n{command}\n'
    env = command_env(pasted)
    env["PATH"] = f"{find_bin_dir()}:{env['PATH']}"  # psql sits beside initdb

    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=HANG_GUARD_S,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    values = [json.loads(out)["value"] for out in result.stdout.splitlines()]
    assert len(values) == 5
    assert all(re.fullmatch(r"[0-9a-f.:]+", value) for value in values)  # IP addresses
