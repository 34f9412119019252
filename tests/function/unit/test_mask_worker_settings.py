"""``PARALLEL_MASKING`` and ``MASK_WORKER_TIMEOUT_SECONDS``: what is read, what is refused."""

from __future__ import annotations

import pytest

from login_etl.config import ConfigurationError, Settings

BASE = {"DATABASE_URL": "-", "DATA_KEY_CIPHERTEXT": "-"}


@pytest.mark.parametrize("timeout", ["inf", "1e300", "nan", "0", "-1", "901"])
def test_a_worker_timeout_the_wait_cannot_take_is_refused_at_start(timeout: str) -> None:
    """inf raised OverflowError in the wait for the worker: every large batch failed."""
    with pytest.raises(ConfigurationError, match="MASK_WORKER_TIMEOUT_SECONDS"):
        Settings.from_env({**BASE, "MASK_WORKER_TIMEOUT_SECONDS": timeout})


def test_a_worker_timeout_in_range_is_read() -> None:
    settings = Settings.from_env({**BASE, "MASK_WORKER_TIMEOUT_SECONDS": "2.5"})
    assert settings.mask_worker_timeout_s == 2.5


@pytest.mark.parametrize("memory_mb", ["3538", "1769"])
def test_an_empty_parallel_masking_is_auto_like_any_empty_setting(memory_mb: str) -> None:
    """template.yaml declares settings empty so that `sam local invoke` can set them."""
    lambda_env = {**BASE, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory_mb}
    auto = Settings.from_env(lambda_env).parallel_masking
    assert Settings.from_env({**lambda_env, "PARALLEL_MASKING": ""}).parallel_masking == auto
