from __future__ import annotations

import base64

import boto3
import pytest
from botocore.exceptions import ClientError

from login_etl.adapters.config_stores import read_parameter
from login_etl.adapters.kms_data_key import DataKeyError, KmsDataKeySource
from login_etl.config import KMS_ENCRYPTION_CONTEXT
from login_etl_local.stack_record import LocalStack


def ciphertext(stack: LocalStack) -> str:
    return read_parameter(boto3.client("ssm"), stack.provisioned.data_key_parameter)


def test_the_stored_data_key_decrypts_to_32_bytes(stack: LocalStack) -> None:
    source = KmsDataKeySource(boto3.client("kms"), ciphertext(stack), KMS_ENCRYPTION_CONTEXT)
    key = source.data_key()
    assert len(key) == 32
    assert source.data_key() == key


def test_another_encryption_context_is_refused(stack: LocalStack) -> None:
    source = KmsDataKeySource(boto3.client("kms"), ciphertext(stack), {"purpose": "other"})
    with pytest.raises(ClientError, match="InvalidCiphertext"):
        source.data_key()


def test_garbage_ciphertext_is_a_clear_error(stack: LocalStack) -> None:
    with pytest.raises(DataKeyError, match="base64"):
        KmsDataKeySource(boto3.client("kms"), "not base64!", KMS_ENCRYPTION_CONTEXT)
    source = KmsDataKeySource(
        boto3.client("kms"), base64.b64encode(b"x" * 64).decode(), KMS_ENCRYPTION_CONTEXT
    )
    with pytest.raises(ClientError):
        source.data_key()
