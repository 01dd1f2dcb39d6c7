"""One recording as review sees it, and the answers every endpoint gives about its
availability: unknown (404), deleted (410), past its deadline and not held (410: due for
deletion, R2, so it may not be viewed or exported any more).

A handler does::

    await view.wait_for_arrival(pool, recording_id, wait=settings.review_arrival_wait)
    async with audit.transaction(pool) as conn:
        found = await view.lookup(conn, recording_id, for_update=...)
        recording = found.available(now)      # raises the Problem, or returns the recording
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bwc.db import Connection
from bwc.problems import Problem
from services.review import repository as repo

#: Seconds between looks while waiting for a recording's ``recording.ingested`` to arrive.
ARRIVAL_POLL = 0.1


@dataclass(frozen=True)
class Recording:
    id: uuid.UUID
    device_id: str
    officer_id: str | None
    recorded_at: datetime
    ended_at: datetime | None
    uploaded_at: datetime
    size_bytes: int
    sha256: str
    content_type: str
    filename: str | None
    trigger_reason: str
    announced: bool
    imminent_danger: bool
    in_home: bool
    location: str | None
    bucket: str
    object_key: str
    object_version_id: str | None
    delete_after: datetime
    standing_holds: int

    @property
    def held(self) -> bool:
        return self.standing_holds > 0

    def past_deadline(self, now: datetime) -> bool:
        return now >= self.delete_after


@dataclass(frozen=True)
class Lookup:
    """What review knows of one id: the recording, or when it was deleted, or nothing."""

    recording_id: uuid.UUID
    recording: Recording | None
    deleted_at: datetime | None

    @property
    def result(self) -> str:
        """For audit entries of attempts: ``ok``, ``unknown``, ``deleted``."""
        if self.recording is not None:
            return "ok"
        return "deleted" if self.deleted_at is not None else "unknown"

    def present(self) -> Recording:
        """The recording, or 404 / 410 when it is unknown or deleted."""
        if self.recording is not None:
            return self.recording
        if self.deleted_at is not None:
            raise Problem(410, "Recording deleted",
                          f"recording {self.recording_id} was deleted at "
                          f"{self.deleted_at.isoformat()} (R5); only its deletion record "
                          "remains")
        raise Problem(404, "Recording not found", f"no recording {self.recording_id}")

    def available(self, now: datetime) -> Recording:
        """``present()``, and not past its deadline unless a hold stands: a recording due for
        deletion (R2) is gone for every purpose but the sweep that deletes it."""
        recording = self.present()
        if recording.past_deadline(now) and not recording.held:
            raise Problem(410, "Recording past its deadline",
                          f"recording {self.recording_id} passed its deadline at "
                          f"{recording.delete_after.isoformat()} without a hold and is due for "
                          "deletion (R2); it may no longer be viewed or exported")
        return recording


def _recording(row: asyncpg.Record) -> Recording:
    return Recording(**dict(row))


async def lookup(conn: Connection, recording_id: uuid.UUID, *, for_update: bool = False) -> Lookup:
    row = await repo.get_recording(conn, recording_id, for_update=for_update)
    if row is not None:
        return Lookup(recording_id, _recording(row), None)
    return Lookup(recording_id, None, await repo.deleted_at(conn, recording_id))


async def wait_for_arrival(
    pool: asyncpg.Pool, recording_id: uuid.UUID, *, wait: float
) -> None:
    """Return once review knows ``recording_id`` (or its deletion), or after ``wait``
    seconds: the catalogue may show a recording a moment before review's consumer has applied
    its ``recording.ingested``. An id that never arrives costs the caller ``wait``."""
    deadline = time.monotonic() + wait
    async with pool.acquire() as conn:
        while not await repo.is_known(conn, recording_id):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(ARRIVAL_POLL)
