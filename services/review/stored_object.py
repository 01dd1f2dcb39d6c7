"""Reading a recording's stored bytes for a response (media, export): opened before the
answer starts, closed however the answer ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from bwc.s3 import ObjectStore
from services.review.legal_hold import storage_unavailable
from services.review.view import Recording


async def open_stored(
    store: ObjectStore, recording: Recording, *, outcome: str, offset: int = 0,
    length: int = 0,
) -> AsyncGenerator[bytes, None]:
    """The bytes of the exact version ``recording.ingested`` named (from ``offset``,
    ``length`` bytes; 0: to the end), with S3 already answering: the GET and its first piece
    happen here, so S3 refusing or away is a 503 + ``Retry-After`` saying ``outcome`` before
    any status line is sent or anything is recorded.

    The generator returned has started: ``aclose()`` releases the S3 response even if not a
    byte of it is ever sent (the audit entry failed, the client went away)."""
    chunks = store.iter_object(recording.object_key, recording.object_version_id,
                               offset=offset, length=length)

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            with storage_unavailable("reading the recording", outcome):
                first = await anext(chunks, b"")
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
