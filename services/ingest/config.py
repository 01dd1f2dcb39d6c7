"""Ingest settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from bwc.settings import CommonSettings, Duration

MIB = 1024 * 1024
#: S3 refuses parts below 5 MiB except the last one.
S3_MIN_PART_SIZE = 5 * MIB
#: S3 allows at most this many parts in one multipart upload.
S3_MAX_PARTS = 10_000


class IngestSettings(CommonSettings):
    #: Bytes per S3 part. One PATCH holds the part being filled plus its parts in flight.
    ingest_part_size: int = Field(default=S3_MIN_PART_SIZE, ge=S3_MIN_PART_SIZE, le=512 * MIB)
    #: Parts of one upload sent to S3 at once while its body goes on arriving.
    ingest_parts_in_flight: int = Field(default=3, ge=1, le=16)
    #: Bytes of parts on their way to S3 in the whole process; a PATCH whose next part does not
    #: fit stops reading its body until one is confirmed (at least one part always fits).
    ingest_memory_budget: int = Field(default=64 * MIB, ge=S3_MIN_PART_SIZE)
    #: Bytes of sub-part tails kept in memory for the next chunk (0: always read them back).
    ingest_tail_cache: int = Field(default=64 * MIB, ge=0)
    #: Largest recording accepted (announced as Tus-Max-Size); at most 10,000 parts.
    ingest_max_upload_size: int = Field(default=S3_MAX_PARTS * S3_MIN_PART_SIZE, gt=0)
    #: An unfinished upload untouched this long is aborted (tus expiration extension).
    ingest_upload_expiry: Duration = timedelta(hours=24)
    #: PATCH requests writing at once per process; each holds one database connection, so
    #: this stays below the pool size (the relay, janitor, HEAD and POST need the rest).
    ingest_max_concurrent_writes: int = Field(default=6, ge=1)
    #: How long a PATCH may queue for a write slot before it gets 503 + Retry-After.
    ingest_write_wait: float = Field(default=10.0, ge=0)
    #: A PATCH body that sends nothing for this long ends; what arrived is kept.
    ingest_body_idle_timeout: float = Field(default=60.0, gt=0)
    #: Slowest transfer a PATCH may keep a write slot with, in bytes/s (0: no minimum). Measured
    #: over each window of ``ingest_min_rate_window`` seconds spent waiting for the device,
    #: after the first ``ingest_min_rate_grace`` seconds; a slower PATCH is ended, what arrived
    #: is kept, and the device is told to resume (503 + Retry-After).
    ingest_min_rate: int = Field(default=8 * 1024, ge=0)
    ingest_min_rate_grace: float = Field(default=30.0, ge=0)
    ingest_min_rate_window: float = Field(default=30.0, gt=0)
    #: PATCH requests one device may have writing at once on one instance (429 beyond that),
    #: so one device cannot take every write slot.
    ingest_max_writes_per_device: int = Field(default=2, ge=1)
    #: How often unfinished and stuck uploads are checked.
    ingest_janitor_interval: float = Field(default=30.0, gt=0)
    #: How long the janitor leaves a creation or completion to the request running it before it
    #: takes over (past the R2 deadline it does not wait).
    ingest_recovery_grace: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _fits_in_s3_parts(self) -> IngestSettings:
        # Otherwise an upload near the limit would fail at part 10,001 after hours of work.
        if self.ingest_max_upload_size > S3_MAX_PARTS * self.ingest_part_size:
            raise ValueError(
                f"BWC_INGEST_MAX_UPLOAD_SIZE={self.ingest_max_upload_size} needs more than "
                f"{S3_MAX_PARTS} parts of BWC_INGEST_PART_SIZE={self.ingest_part_size}; "
                "raise the part size or lower the maximum")
        if self.ingest_max_concurrent_writes > self.database_pool_size - 3:
            raise ValueError(
                f"BWC_INGEST_MAX_CONCURRENT_WRITES={self.ingest_max_concurrent_writes} must be "
                f"at most BWC_DATABASE_POOL_SIZE - 3 ({self.database_pool_size - 3})")
        return self
