"""The storage barrier of a hold (R3, R6): the object-lock legal hold on every stored version of
a recording, so that held evidence survives even a hold row lost from review's database, a
bug in a deletion path, or a delete by anyone with the bucket's credentials: S3 refuses to
delete a version whose legal hold is on.

What is held: every version of the recording's object key (the exact key, ``recordings/<id>``)
and every version of every key under ``derived/<id>/``; delete markers hold no bytes and take
no legal hold. The versions are *listed* (not taken from the event alone): a retried
completion may have written a second version, and only a listing sees it. Listings are slow on
moto (DESIGN §5), which is acceptable for steps as rare as placing a hold or releasing the last
one. The version the ``recording.ingested`` named must be among them: if it is not, the stored
object is not where review believes it is, and nothing is held (503).

The order is the barrier first, the record after, both under the recording's row lock (hold
placements and releases of one recording take turns, across replicas):

- placing: legal hold on every version → hold row, ``recording.hold_placed``, audit entry
  (one transaction);
- releasing the last standing hold: legal hold off every version → release, event, audit
  entry (one transaction).

If the transaction fails after S3 changed, S3 and the database disagree. ``undo_placement``
and ``redo_hold`` repair that afterwards, under the same lock and judged by the hold rows
that stand then (best effort, logged). A legal hold left on by mistake is the safe side: the
evidence is kept and retention records a refusal; one left off while a hold stands is not,
and is what ``redo_hold`` exists for.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from bwc.problems import Problem
from bwc.s3 import ObjectStore, StorageError, as_storage_error
from services.review import view
from services.review.view import Recording

log = logging.getLogger(__name__)

#: How long a placement or release waits for another one on the same recording: the one in
#: front holds the row lock while it talks to S3 (a listing and one call per version).
HOLD_LOCK_TIMEOUT = timedelta(seconds=30)
RETRY_AFTER = "5"


@dataclass(frozen=True)
class StoredVersion:
    key: str
    version_id: str | None

    def detail(self) -> dict[str, str | None]:
        """For audit entries: where the bytes are, not what they are."""
        return {"key": self.key, "version_id": self.version_id}


def derived_prefix(recording: Recording) -> str:
    """Where files derived from a recording live (docs/ingest.md, "Bucket layout")."""
    return f"derived/{recording.id}/"


@contextlib.contextmanager
def storage_unavailable(doing: str, outcome: str) -> Iterator[None]:
    """S3 refusing or unreachable while ``doing`` → 503 + ``Retry-After`` saying ``outcome``
    (what was, or was not, kept). Anything else is a bug and stays one."""
    try:
        yield
    except Exception as exc:
        error = as_storage_error(exc)
        if error is None:
            raise
        log.warning("object storage failed", extra={"doing": doing, "error": str(error)[:500]})
        raise Problem(503, "Object storage unavailable",
                      f"object storage failed while {doing} ({error}); {outcome}; try again "
                      "after the time in Retry-After",
                      headers={"Retry-After": RETRY_AFTER}) from exc


async def stored_versions(store: ObjectStore, recording: Recording) -> list[StoredVersion]:
    """Every stored version of the recording's object and of its derived files."""
    if recording.bucket != store.bucket:
        raise StorageError(f"recording {recording.id} is in bucket {recording.bucket!r}, this "
                           f"service stores in {store.bucket!r}")
    found = await store.list_versions(recording.object_key, exact=True)
    found += await store.list_versions(derived_prefix(recording))
    return [StoredVersion(key, version_id) for key, version_id in found]


async def hold(store: ObjectStore, recording: Recording) -> list[StoredVersion]:
    """Set the legal hold on every stored version (R6); ``StorageError`` if the version the
    event named is not among them, or S3 fails (some versions may be held by then)."""
    versions = await stored_versions(store, recording)
    mine = [v for v in versions if v.key == recording.object_key]
    expected = recording.object_version_id
    if not mine or (expected is not None and expected not in {v.version_id for v in mine}):
        raise StorageError(f"version {expected} of {recording.object_key} is not stored: the "
                           "object is not where recording.ingested says")
    for version in versions:
        await store.set_legal_hold(version.key, version.version_id, enabled=True)
    return versions


async def release(store: ObjectStore, recording: Recording) -> list[StoredVersion]:
    """Clear the legal hold on every stored version: the recording's last hold is released
    (R4), so its deadline applies again and retention may delete it."""
    versions = await stored_versions(store, recording)
    for version in versions:
        await store.set_legal_hold(version.key, version.version_id, enabled=False)
    return versions


async def _repair(
    pool: asyncpg.Pool, store: ObjectStore, recording: Recording, *, want_held: bool
) -> None:
    """Under the recording's lock: if its standing holds say the legal hold should be
    ``want_held``, make it so. Logged either way; never raises (the request has failed
    already, and its own error is the one to report)."""
    action = "set again" if want_held else "cleared"
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = "
                               f"{int(HOLD_LOCK_TIMEOUT.total_seconds() * 1000)}")
            found = await view.lookup(conn, recording.id, for_update=True)
            current = found.recording
            if current is None or current.held != want_held:
                log.info("legal hold left as it is: the hold rows no longer call for a repair",
                         extra={"recording_id": str(recording.id), "would_be": action})
                return
            if want_held:
                await hold(store, current)
            else:
                await release(store, current)
        log.warning("legal hold repaired after a failed change", extra={
            "recording_id": str(recording.id), "legal_hold": action})
    except Exception as exc:
        log.error("legal hold could not be repaired after a failed change", extra={
            "recording_id": str(recording.id), "legal_hold": f"not {action}",
            "error": repr(exc)[:500]})


async def undo_placement(pool: asyncpg.Pool, store: ObjectStore, recording: Recording) -> None:
    """A placement failed after (some of) the legal hold was set: clear it again, but only if
    no hold stands (the recording may have been held before, or by a placement since)."""
    await _repair(pool, store, recording, want_held=False)


async def redo_hold(pool: asyncpg.Pool, store: ObjectStore, recording: Recording) -> None:
    """A last release failed after (some of) the legal hold was cleared: the hold still
    stands, so the barrier must too (R3)."""
    await _repair(pool, store, recording, want_held=True)
