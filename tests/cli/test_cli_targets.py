"""Every command says up front which stack it acts on, and refuses a missing or muddled one."""

from __future__ import annotations

from pathlib import Path

import pytest

from login_etl_cli.local_stack import stack_dir
from login_etl_local.stack_record import LocalStack
from tests.cli_helpers import (
    exports,
    free_port,
    login_etl,
    marked_commands,
    record_dead_stack,
    without_target_line,
)

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "list"],
        ["unmask", "gAAAAAAuMtzGtoken", "--reason", "INC-1"],
        ["rekey"],
        ["seed", "--count", "1"],
        ["dlq", "show"],
        ["report"],
        ["db", "init"],
    ],
)
def test_without_a_stack_nothing_goes_to_whatever_the_credentials_reach(
    tmp_path: Path, argv: list[str]
) -> None:
    result = login_etl(*argv, cwd=tmp_path, env=FAKE_AWS)

    assert result.returncode == 1
    assert result.stderr.startswith(
        "login-etl: no stack to use: start a local one with `login-etl stack up`, or name yours"
    )
    assert len(result.stderr.splitlines()) == 1
    assert "amazonaws.com" not in result.stderr


def test_aws_itself_is_named_by_account_region_and_identity(
    stack: LocalStack, tmp_path: Path
) -> None:
    # "AWS itself": no AWS_ENDPOINT_URL; the services this command calls are sent to moto one
    # by one (boto3's per-service endpoints), which answers as account 123456789012.
    endpoint = stack.aws_endpoint_url
    env = {
        **FAKE_AWS,
        "DATA_KEY_PARAMETER": stack.provisioned.data_key_parameter,
        "AWS_ENDPOINT_URL_STS": endpoint,
        "AWS_ENDPOINT_URL_SSM": endpoint,
        "AWS_ENDPOINT_URL_KMS": endpoint,
    }

    result = login_etl("keys", "list", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "login-etl: using AWS account 123456789012 in us-east-1 as"
        " arn:aws:sts::123456789012:user/moto: named by the environment"
    )


def target_line(result_stderr: str) -> str:
    return result_stderr.splitlines()[0]


def test_the_target_is_said_and_muddled_or_stale_exports_are_explained(tmp_path: Path) -> None:
    with marked_commands() as (marker, running):
        up = login_etl("stack", "up", cwd=tmp_path, env=marker)
        assert up.returncode == 0, up.stderr
        pasted = exports(up.stdout)
        aws = f"AWS at {pasted['AWS_ENDPOINT_URL']} (us-east-1)"
        port = pasted["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
        postgres = f"Postgres postgres@127.0.0.1:{port}/postgres"
        local = "the local stack of 'login-etl stack up' (.local-stack/stack.json)"
        try:
            # Found by itself, then through the pasted exports: each command says where it goes.
            for argv, said in [
                (["seed", "--count", "20"], aws),
                (["dlq", "show"], aws),
                (["keys", "list"], aws),
                (["report"], postgres),
                (["db", "init"], postgres),
                (["rekey"], f"{postgres} and {aws}"),
            ]:
                found = login_etl(*argv, cwd=tmp_path)
                assert target_line(found.stderr) == f"login-etl: using {said}: {local}", argv
                named = login_etl(*argv, cwd=tmp_path, env=pasted)
                assert target_line(named.stderr) == (
                    f"login-etl: using {said}: named by the environment"
                ), argv

            # DATABASE_URL alone would send the AWS calls to AWS itself.
            alone = login_etl(
                "keys", "list", cwd=tmp_path, env={"DATABASE_URL": pasted["DATABASE_URL"]}
            )
            assert alone.returncode == 1
            assert alone.stderr.startswith(
                "login-etl: DATABASE_URL set but AWS_ENDPOINT_URL not, while the local stack of"
                f" `login-etl stack up` runs at {pasted['AWS_ENDPOINT_URL']}: the environment"
                " wins, so the AWS calls would go to AWS itself"
            )
            part = {k: pasted[k] for k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
            partial = login_etl("report", cwd=tmp_path, env=part)
            assert partial.returncode == 1
            assert "only some of the local stack's exports are set (AWS_ENDPOINT_URL);" in (
                partial.stderr
            )

            # Down and up again: new ports, and the old exports are recognised as stale.
            assert login_etl("stack", "down", cwd=tmp_path).returncode == 0
            assert login_etl("stack", "up", cwd=tmp_path, env=marker).returncode == 0
            stale = login_etl("seed", "--count", "1", cwd=tmp_path, env=pasted)
            assert stale.returncode == 1
            assert stale.stderr.startswith(
                f"login-etl: nothing answers at AWS_ENDPOINT_URL ({pasted['AWS_ENDPOINT_URL']})"
                f" and DATABASE_URL (127.0.0.1 port {port}): these exports are from an earlier"
                " `login-etl stack up`"
            )
        finally:
            login_etl("stack", "down", cwd=tmp_path)
        gone = login_etl("seed", "--count", "1", cwd=tmp_path, env=pasted)
        assert (
            gone.stderr.strip()
            .splitlines()[-1]
            .startswith(
                f"login-etl: cannot reach AWS at {pasted['AWS_ENDPOINT_URL']}/: is the stack"
                " running? (exports of a stopped `login-etl stack up`?"
            )
        )
        assert running() == []


def test_the_stack_directory_is_found_as_git_finds_its_repository(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    (project / "pyproject.toml").write_text("")

    # No stack yet: the project's root is where one goes, from any subdirectory.
    assert stack_dir(deep) == project / ".local-stack"
    # A .local-stack nearer than the root (made before the root was a project, say) wins.
    (project / "src" / ".local-stack").mkdir()
    assert stack_dir(deep) == project / "src" / ".local-stack"
    # With no project and no stack above, the working directory's own.
    assert stack_dir(tmp_path) == tmp_path / ".local-stack"


def test_a_command_in_a_subdirectory_finds_the_projects_stack(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "src").mkdir()
    record_dead_stack(tmp_path)

    result = login_etl("report", cwd=tmp_path / "src", env=FAKE_AWS)

    assert result.returncode == 1
    assert result.stderr.startswith("login-etl: the local stack is not usable: moto server DOWN")
    assert not (tmp_path / "src" / ".local-stack").exists()


def test_a_hand_typed_database_url_to_a_dead_postgres_is_not_called_stale_exports(
    tmp_path: Path,
) -> None:
    record_dead_stack(tmp_path)  # a local stack is recorded (and down)
    typed = f"postgresql://alice:secret@localhost:{free_port()}/logins"

    result = login_etl("report", cwd=tmp_path, env={"DATABASE_URL": typed})

    assert result.returncode == 1
    assert "earlier `login-etl stack up`" not in result.stderr
    assert "exports of a stack that was stopped" not in result.stderr
    assert without_target_line(result.stderr).startswith(
        "login-etl: cannot reach Postgres at postgresql://alice:***@localhost:"
    )


@pytest.mark.parametrize(
    ("argv", "missing"),
    [(["dlq", "show"], "QUEUE_URL and DLQ_URL"), (["seed", "--count", "1"], "QUEUE_URL")],
)
def test_an_emulator_without_queue_urls_is_told_to_set_both(
    tmp_path: Path, argv: list[str], missing: str
) -> None:
    localstack = {**FAKE_AWS, "AWS_ENDPOINT_URL": "http://localhost:4566"}

    result = login_etl(*argv, cwd=tmp_path, env=localstack)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"login-etl: no queue: {missing} not set. Set QUEUE_URL and DLQ_URL to the login"
        " queue's URL and its dead-letter queue's on http://localhost:4566"
    ]  # not `login-etl stack up`: that starts moto, not LocalStack
