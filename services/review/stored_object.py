"""Reading a recording's stored bytes for a response (media, export): opened before the
answer starts and before its audit entry is written, closed however the answer ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

from minio.error import S3Error

from bwc.problems import Problem
from bwc.s3 import ObjectStore
from services.review.legal_hold import storage_unavailable
from services.review.view import Recording

#: What S3 answers for a version that is no longer stored.
_GONE = frozenset({"NoSuchKey", "NoSuchVersion"})


class StoredObjectGone(Exception):
    """The version ``recording.ingested`` named is no longer stored: deleted (R5) before
    review applied ``recording.deleted``."""


def gone(recording_id: uuid.UUID) -> Problem:
    """410 for a recording whose stored object is gone, though review did not know yet."""
    return Problem(410, "Recording deleted",
                   f"the stored object of recording {recording_id} is no longer in object "
                   "storage: it was deleted (R5)")


async def open_stored(
    store: ObjectStore, recording: Recording, *, outcome: str, offset: int = 0,
    length: int = 0,
) -> AsyncGenerator[bytes, None]:
    """The bytes of the exact version ``recording.ingested`` named (from ``offset``,
    ``length`` bytes; 0: to the end), with S3 already answering: the GET and its first piece
    happen here, so S3 refusing or away is a 503 + ``Retry-After`` saying ``outcome`` before
    any status line is sent or anything is recorded; a version that is gone is
    ``StoredObjectGone``.

    The generator returned has started: ``aclose()`` releases the S3 response even if not a
    byte of it is ever sent (the audit entry failed, the client went away)."""
    chunks = store.iter_object(recording.object_key, recording.object_version_id,
                               offset=offset, length=length)

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            with storage_unavailable("reading the recording", outcome):
                try:
                    first = await anext(chunks, b"")
                except S3Error as exc:
                    if exc.code in _GONE:  # not trouble to retry: the bytes are gone
                        raise StoredObjectGone(f"{exc.code}: {recording.object_key}") from exc
                    raise
            yield b""  # opened: what follows is the recording's
            if first:
                yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    opened = body()
    await anext(opened)
    return opened
