"""The one R2 deadline function (R2: at most the retention period after the recording)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bwc.deadline import deletion_deadline, is_past_deadline

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DAYS_14 = timedelta(days=14)


def test_deadline_runs_from_the_recording() -> None:
    recorded = NOW - timedelta(days=3)
    assert deletion_deadline(recorded, retention_period=DAYS_14, now=NOW) == recorded + DAYS_14


def test_future_recorded_at_is_clamped_to_now() -> None:
    future = NOW + timedelta(minutes=4)
    assert deletion_deadline(future, retention_period=DAYS_14, now=NOW) == NOW + DAYS_14


def test_deadline_is_inclusive() -> None:
    assert is_past_deadline(NOW, now=NOW)
    assert not is_past_deadline(NOW + timedelta(microseconds=1), now=NOW)
