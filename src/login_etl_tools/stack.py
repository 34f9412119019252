"""The local stack: moto server + throwaway Postgres, provisioned, as environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from login_etl_tools.moto_server import MotoServer
from login_etl_tools.postgres_server import PostgresServer
from login_etl_tools.provisioning import Provisioned, provision_here

REGION = "us-east-1"
# Local shortcut: a failed message comes back after 5 s, not after 6 x the function timeout, so
# retries and the redrive take seconds. Not less: the scheduled drain must delete a round before
# its messages become visible again. (The event source mapping emulation sets its own.)
LOCAL_VISIBILITY_TIMEOUT_S = 5
# moto accepts any credentials; these only keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class LocalStack:
    """Endpoints and provisioned resources of a running local stack."""

    aws_endpoint_url: str
    database_url: str
    provisioned: Provisioned

    def environment(self) -> dict[str, str]:
        """What the function and boto3 need: the same variables one would set for AWS."""
        return {
            **stack_environment(self.aws_endpoint_url),
            "DATABASE_URL": self.database_url,
            "DATA_KEY_PARAMETER": self.provisioned.data_key_parameter,
            "QUEUE_URL": self.provisioned.queue_url,
            "DLQ_URL": self.provisioned.dlq_url,  # for the operator commands, not the function
        }


@contextmanager
def local_stack(
    max_receive_count: int = 5, visibility_timeout_s: int = LOCAL_VISIBILITY_TIMEOUT_S
) -> Iterator[LocalStack]:
    """Start moto and Postgres, provision, yield; stop both on the way out, whatever happens."""
    moto = MotoServer.start()
    try:
        postgres = PostgresServer.start()
        try:
            with patched_environ(stack_environment(moto.endpoint_url)):
                provisioned = provision_here(
                    max_receive_count=max_receive_count,
                    visibility_timeout_s=visibility_timeout_s,
                )
            yield LocalStack(moto.endpoint_url, postgres.url, provisioned)
        finally:
            postgres.stop()
    finally:
        moto.stop()


def stack_environment(aws_endpoint_url: str) -> dict[str, str]:
    """boto3's standard variables for the emulator: endpoint, region, dummy credentials."""
    return {
        "AWS_ENDPOINT_URL": aws_endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **DUMMY_CREDENTIALS,
    }


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, restoring the previous values after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
