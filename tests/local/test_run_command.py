"""``login-etl run`` as a user runs it: a subprocess that starts and stops its own stack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from login_etl_cli.sample_data import generate_labelled
from tests.cli_helpers import login_etl, record_dead_stack


def figure(output: str, label: str) -> int:
    match = re.search(rf"^\s+{re.escape(label)}\s+(\d+)$", output, re.MULTILINE)
    assert match, f"no {label!r} in:\n{output}"
    return int(match.group(1))


@pytest.mark.parametrize("mode", ["sqs", "schedule"])
def test_run_loads_the_valid_messages_and_dead_letters_the_rest(mode: str, tmp_path: Path) -> None:
    labelled = generate_labelled(300, seed=5)
    valid = sum(ok for _, ok in labelled)

    result = login_etl("run", "--mode", mode, "--count", "300", "--seed", "5", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert figure(result.stdout, "rows written to user_logins") == valid
    assert figure(result.stdout, "messages dead-lettered") == 300 - valid
    assert "local stack stopped" in result.stdout


def test_a_bad_batch_size_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = login_etl("run", "--batch-size", "20000", cwd=tmp_path)

    assert result.returncode == 2  # a usage error, refused before anything starts
    assert result.stderr.strip().splitlines() == [
        "login-etl run: argument --batch-size: must be between 1 and 10,000, got 20000"
        " (see login-etl run --help)"
    ]
    assert not (tmp_path / ".local-stack").exists()


@pytest.mark.parametrize("arguments", [["--no-seed"], ["--count", "10"]])
def test_run_refuses_a_recorded_stack_that_is_down(arguments: list[str], tmp_path: Path) -> None:
    record_dead_stack(tmp_path)  # its moto and Postgres were killed

    result = login_etl("run", *arguments, cwd=tmp_path)

    assert result.returncode == 1
    assert "starting a throwaway" not in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("login-etl: the local stack is not usable: moto server DOWN")
    assert "`login-etl stack down`" in line


def test_run_no_seed_on_a_throwaway_stack_is_refused_before_it_starts(tmp_path: Path) -> None:
    result = login_etl("run", "--no-seed", cwd=tmp_path)

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("login-etl: --no-seed: no stack is running here")
    assert not (tmp_path / ".local-stack").exists()  # nothing was started


def test_run_in_a_subdirectory_keeps_its_state_at_the_projects_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "src").mkdir()

    result = login_etl("run", "--count", "20", cwd=tmp_path / "src")

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "src" / ".local-stack").exists()
    assert (tmp_path / ".local-stack").is_dir()  # where its throwaway stack was recorded


@pytest.mark.parametrize("argv", [["stack", "up"], ["run", "--count", "5"]])
def test_without_the_local_extra_the_stack_is_refused_at_once(
    argv: list[str], tmp_path: Path
) -> None:
    # `pip install .` without [local]: moto's server is not importable.
    hidden = tmp_path / "without-moto"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text("import sys\nsys.modules['moto'] = None\n")

    result = login_etl(*argv, cwd=tmp_path, env={"PYTHONPATH": str(hidden)})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "login-etl: the local stack needs the 'local' extra (moto not installed): pip install"
        " 'login-etl[local]' (from a checkout: pip install '.[local]', or make install)"
    ]
    assert not (tmp_path / ".local-stack").exists()
