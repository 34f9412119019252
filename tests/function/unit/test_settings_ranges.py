"""Every numeric setting in docs/deploying.md's table has a range and a unit, checked at cold
start: a value outside it is refused there, naming the setting and its range, instead of
passing and then failing every batch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from login_etl.config import NUMBERS, ConfigurationError, Settings

ROOT = Path(__file__).resolve().parents[3]
REQUIRED = {"DATABASE_URL": "postgresql://u:p@db.example/logins", "DATA_KEY_CIPHERTEXT": "x"}
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| [^|]* \| ([^|]*) \|", re.MULTILINE)


def documented_ranges() -> dict[str, str]:
    """The range column of the deployment table, for the settings that have one."""
    table = (ROOT / "docs/deploying.md").read_text()
    return {name: text.strip() for name, text in ROW.findall(table) if text.strip() != "\u2013"}


def settings_with(name: str, value: str) -> Settings:
    return Settings.from_env({**REQUIRED, name: value})


def test_the_table_gives_every_numeric_setting_its_range_as_the_code_checks_it() -> None:
    assert documented_ranges() == {name: s.describe() for name, s in NUMBERS.items()}


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_each_bound_is_accepted_and_a_step_past_it_refused(name: str) -> None:
    setting = NUMBERS[name]
    step = 1 if setting.whole else 0.05
    for inside in (setting.low, setting.high, setting.default):
        settings_with(name, f"{inside:.2f}".rstrip("0").rstrip("."))
    for outside in (setting.low - step, setting.high + step):
        with pytest.raises(ConfigurationError) as refused:
            settings_with(name, repr(outside))
        assert str(refused.value) == f"{name} must be {setting.describe()}"


@pytest.mark.parametrize("name", sorted(NUMBERS))
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e12", "ten", "0x10"])
def test_values_no_range_holds_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be "):
        settings_with(name, value)


@pytest.mark.parametrize("name", sorted(n for n, s in NUMBERS.items() if s.whole))
def test_a_fraction_of_a_whole_setting_is_refused_not_rounded(name: str) -> None:
    """0.5 ms of statement timeout silently became 0, no timeout at all."""
    setting = NUMBERS[name]
    with pytest.raises(ConfigurationError, match=f"^{name} must be a whole number"):
        settings_with(name, str(setting.low + 0.5))


def test_an_empty_value_is_the_default() -> None:
    for name, setting in NUMBERS.items():
        assert getattr_by_env(settings_with(name, ""), name) == setting.default


def getattr_by_env(settings: Settings, name: str) -> float:
    attribute = {
        "DB_CONNECT_TIMEOUT_SECONDS": "db_connect_timeout_s",
        "DB_STATEMENT_TIMEOUT_MS": "db_statement_timeout_ms",
        "DATA_KEY_MAX_AGE_SECONDS": "data_key_max_age_s",
        "MASK_CACHE_SIZE": "mask_cache_size",
        "DRAIN_WAIT_SECONDS": "drain_wait_s",
        "DRAIN_RECEIVES_PER_BATCH": "drain_receives_per_batch",
        "DRAIN_SAFETY_MARGIN_MS": "drain_safety_margin_ms",
        "QUEUE_RETENTION_SECONDS": "queue_retention_s",
        "DLQ_RETENTION_SECONDS": "dlq_retention_s",
        "LEDGER_RETENTION_MARGIN_SECONDS": "ledger_retention_margin_s",
        "LEDGER_PRUNE_BATCH_ROWS": "ledger_prune_batch_rows",
    }[name]
    return float(getattr(settings, attribute))
