"""R2: the retention period is configurable downwards only."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from pydantic import ValidationError

from bwc.settings import CommonSettings


def test_default_retention_is_fourteen_days() -> None:
    assert CommonSettings().retention_period == timedelta(days=14)


@pytest.mark.parametrize("value", ["P7D", "86400", "P14D"])
def test_shorter_or_equal_periods_are_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BWC_RETENTION_PERIOD", value)
    assert CommonSettings().retention_period <= timedelta(days=14)


@pytest.mark.parametrize("value", ["P15D", "P14DT1S", "0", "-P1D"])
def test_longer_or_non_positive_periods_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BWC_RETENTION_PERIOD", value)
    with pytest.raises(ValidationError, match="BWC_RETENTION_PERIOD"):
        CommonSettings()


def test_prod_refuses_development_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWC_ENVIRONMENT", "prod")
    with pytest.raises(ValidationError, match="BWC_S3_SECRET_KEY"):
        CommonSettings()


def test_a_service_refuses_to_start_with_a_longer_period() -> None:
    """Start-up, not just the settings object, refuses an unlawful period (R2)."""
    result = subprocess.run(
        [sys.executable, "-c", "from services.retention.app import create_app; create_app()"],
        env={**os.environ, "BWC_RETENTION_PERIOD": "P30D"}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode != 0
    assert "exceeds the legal maximum of 14 days" in result.stderr


def test_max_upload_size_must_fit_in_s3_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.ingest.config import IngestSettings

    assert IngestSettings().ingest_max_upload_size == 10_000 * 5 * 1024 * 1024
    monkeypatch.setenv("BWC_INGEST_MAX_UPLOAD_SIZE", str(64 * 1024**3))
    with pytest.raises(ValidationError, match="10000 parts"):
        IngestSettings()
    monkeypatch.setenv("BWC_INGEST_PART_SIZE", str(8 * 1024**2))
    assert IngestSettings().ingest_max_upload_size == 64 * 1024**3
