"""However a command ends, what it started stops; what a SIGKILL leaves, `stack down` finds.

Every command here runs as a real subprocess with a marker in its environment, which every
server it starts inherits: "nothing left running" is checked against the process table, not
against what the command says.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli_helpers import (
    HANG_GUARD_S,
    exports,
    login_etl,
    marked_commands,
    spawn,
    state,
    wait_for,
)


def run_until_it_delivers(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`login-etl run` on a throwaway stack, once its messages are sent (its servers run)."""
    process = spawn("run", "--count", "3000", cwd=tmp_path, env=env)
    stdout = process.stdout
    assert stdout is not None
    wait_for(
        lambda: process.poll() is not None or "sent 3000 messages" in stdout.readline(),
        "run to send its messages",
    )
    assert process.poll() is None, process.communicate()
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_servers_a_run_started(tmp_path: Path, signum: int) -> None:
    with marked_commands() as (env, running):
        process = run_until_it_delivers(tmp_path, env)
        assert len(running()) >= 2  # moto and the postmaster

        process.send_signal(signum)
        _, err = process.communicate(timeout=HANG_GUARD_S)

        assert running() == []
        assert process.returncode == 128 + signum
        assert err.strip().splitlines() == [
            f"login-etl: {'interrupted' if signum == signal.SIGINT else 'stopped by '}"
            f"{'' if signum == signal.SIGINT else signal.Signals(signum).name}"
            "; nothing it started is left running"
        ]
        assert list((tmp_path / ".local-stack").glob("run-*.json")) == []


def test_what_a_killed_run_left_is_listed_and_stopped_by_stack_down(tmp_path: Path) -> None:
    with marked_commands() as (env, running):
        process = run_until_it_delivers(tmp_path, env)
        process.kill()  # SIGKILL: no cleanup can run
        process.communicate(timeout=HANG_GUARD_S)
        assert len(running()) >= 2

        status = login_etl("stack", "status", cwd=tmp_path, env=env)
        assert f"left by a killed login-etl run (pid {process.pid}" in status.stdout
        assert status.returncode == 1
        down = login_etl("stack", "down", cwd=tmp_path, env=env)

        assert down.returncode == 0, down.stderr
        assert f"stopped what a killed login-etl run (pid {process.pid})" in down.stdout
        assert running() == []


def test_two_stack_ups_at_once_start_one_stack(tmp_path: Path) -> None:
    with marked_commands() as (env, running):
        first = spawn("stack", "up", cwd=tmp_path, env=env)
        second = spawn("stack", "up", cwd=tmp_path, env=env)
        outputs = [p.communicate(timeout=HANG_GUARD_S) for p in (first, second)]
        try:
            assert [p.returncode for p in (first, second)] == [0, 0], outputs
            headers = sorted(out.splitlines()[0] for out, _ in outputs)
            assert headers == [
                "# local stack already running; paste to use it:",
                "# local stack started; paste to use it:",
            ]
            assert exports(outputs[0][0]) == exports(outputs[1][0])  # the same stack
        finally:
            down = login_etl("stack", "down", cwd=tmp_path, env=env)
        assert down.stdout.strip() == "local stack stopped"
        assert running() == []  # nothing orphaned


def test_stack_up_on_a_half_down_stack_says_what_it_found(tmp_path: Path) -> None:
    with marked_commands() as (env, running):
        up = login_etl("stack", "up", cwd=tmp_path, env=env)
        assert up.returncode == 0, up.stderr
        recorded = state(tmp_path)
        assert recorded is not None
        try:
            os.kill(recorded["moto_pid"], signal.SIGTERM)  # moto crashed, say
            wait_for(lambda: recorded["moto_pid"] not in running(), "moto to stop")

            again = login_etl("stack", "up", cwd=tmp_path, env=env)

            assert again.returncode == 1
            [line] = again.stderr.strip().splitlines()
            assert "is not fully up: moto server DOWN" in line
            assert "PostgreSQL up" in line
            assert "`login-etl stack down`" in line
            assert "--replace" in line
            assert state(tmp_path) == recorded  # left alone, data included
            replaced = login_etl("stack", "up", "--replace", cwd=tmp_path, env=env)
            assert replaced.stdout.startswith("# local stack started"), replaced.stderr
        finally:
            login_etl("stack", "down", cwd=tmp_path, env=env)
        assert running() == []


def test_a_provisioning_failure_stops_both_servers(tmp_path: Path) -> None:
    with marked_commands() as (env, running):
        # boto3 refuses an unknown profile when the first client is made: after both servers
        # started, before anything was provisioned.
        result = login_etl("stack", "up", cwd=tmp_path, env={**env, "AWS_PROFILE": "no-such"})

        assert running() == []
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "login-etl: AWS profile 'no-such' not found: check AWS_PROFILE"
        )
        assert "starting PostgreSQL" in result.stderr  # it did get that far
        assert state(tmp_path) is None


def test_ctrl_c_while_postgres_initialises_is_one_line_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    with marked_commands() as (env, running):
        process = spawn("stack", "up", cwd=tmp_path, env=env, start_new_session=True)
        tmp = Path(env["TMPDIR"])
        # initdb has created the data directory: it is at work.
        wait_for(lambda: list(tmp.glob("login-etl-pg-*/data")), "initdb to start")

        # Ctrl-C: the terminal signals the whole foreground process group, initdb included.
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=HANG_GUARD_S)

        assert running() == []
        assert process.returncode == 130, (out, err)
        assert err.strip().splitlines()[-1] == (
            "login-etl: interrupted; nothing it started is left running"
        )
        assert "RuntimeError" not in err
        assert "initdb" not in err
        assert state(tmp_path) is None
        assert list(tmp.glob("login-etl-pg-*")) == []
