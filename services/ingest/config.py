"""Ingest settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from bwc.settings import CommonSettings, Duration

MIB = 1024 * 1024
#: S3 refuses parts below 5 MiB except the last one.
S3_MIN_PART_SIZE = 5 * MIB


class IngestSettings(CommonSettings):
    #: Bytes per S3 part; also the most one upload holds in memory.
    ingest_part_size: int = Field(default=S3_MIN_PART_SIZE, ge=S3_MIN_PART_SIZE, le=512 * MIB)
    #: Largest recording accepted (announced as Tus-Max-Size).
    ingest_max_upload_size: int = Field(default=64 * 1024 * MIB, gt=0)
    #: An unfinished upload untouched this long is aborted (tus expiration extension).
    ingest_upload_expiry: Duration = timedelta(hours=24)
    #: How often unfinished and stuck uploads are checked.
    ingest_janitor_interval: float = Field(default=30.0, gt=0)
