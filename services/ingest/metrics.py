"""Prometheus metrics of the ingest service: what must never pile up silently."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

COMPLETIONS_STUCK = Gauge(
    "bwc_ingest_completions_stuck",
    "Uploads whose bytes are all stored but whose completion has not finished within the "
    "recovery grace (retried by the janitor; aborted at the R2 deadline)")
COMPLETION_FAILURES = Counter(
    "bwc_ingest_completion_failures_total",
    "Completion attempts that failed with an error (not a rejection) and will be retried",
    ["by"])
CLEANUP_PENDING = Gauge(
    "bwc_ingest_cleanup_pending",
    "Ended uploads whose stored bytes are not all removed yet (R5; the janitor retries)")
CLEANUP_FAILURES = Counter(
    "bwc_ingest_cleanup_failures_total",
    "Removal steps (abort multipart, delete object versions, delete tails) that failed", ["step"])
WRITES_CUT_OFF = Counter(
    "bwc_ingest_writes_cut_off_total",
    "PATCH bodies ended by the server (idle sender, transfer below the minimum rate, shutdown)",
    ["reason"])
WRITES_REFUSED = Counter(
    "bwc_ingest_writes_refused_total",
    "PATCH requests refused before writing (all write slots busy, device at its cap)",
    ["reason"])
HASH_READ_BACKS = Counter(
    "bwc_ingest_hash_read_backs_total",
    "Completions that read the recording back to hash it, because the SHA-256 computed while "
    "the bytes arrived was lost (a restart, or chunks received by several replicas)")
