"""What the tus write path asks of the place an upload's bytes live (tusd's storage interface).

``writes`` orchestrates lock → store → offset commit; everything about parts, sub-part tails and
the running SHA-256 happens behind this interface, so another backend is a new module, not
edits across the write path. The store never runs SQL: what it wrote is handed back as values
(``Chunk``) for the caller to commit, and a ``Ledger`` records an object *before* it is written,
so a crash between writing and committing leaves nothing that no row names (R5).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bwc.s3 import UploadedPart

#: Called with ``(key, start offset)`` before a segment object is written.
Ledger = Callable[[str, int], Awaitable[None]]


class StorageUnavailable(Exception):
    """Object storage cannot be reached or failed; nothing of the request was kept (503)."""


class StorageFull(Exception):
    """Object storage has no space left (507); nothing of the request was kept."""


class StoredBytesLost(Exception):
    """Neither the multipart upload nor the finished object exists any more."""


@dataclass(frozen=True)
class Segment:
    """One append-only object holding bytes ``start``…``end`` of the file below a part.

    ``end`` and ``version_id`` are ``None`` while it is only announced (written before the PUT,
    committed with the offset): such a row may or may not have an object behind it."""

    key: str
    start: int
    end: int | None = None
    version_id: str | None = None


@dataclass
class Chunk:
    """What one PATCH body brought, stored (``seal``) but not yet committed.

    The caller commits ``received``, ``parts``, ``segment`` and ``tail_size`` with the offset,
    then calls ``UploadStore.committed``: only then do the in-process caches move on."""

    upload_id: uuid.UUID
    start: int
    received: int = 0
    parts: list[UploadedPart] = field(default_factory=list)
    segment: Segment | None = None
    #: Bytes after the last part once this chunk is committed.
    tail_size: int = 0
    #: Segments whose bytes went into a part of this chunk: removable after the commit.
    superseded: list[Segment] = field(default_factory=list)
    #: The SHA-256 of the whole file, when this chunk brought its last byte and the running
    #: hash covered every byte before it.
    sha256: str | None = None
    #: The backend's own state between ``append``, ``seal`` and ``committed``.
    state: Any = field(default=None, repr=False)

    @property
    def end(self) -> int:
        return self.start + self.received


@dataclass(frozen=True)
class Finished:
    sha256: str
    size: int
    version_id: str | None
    #: Whether the stored object was read back to hash it (the running hash was lost).
    read_back: bool


class StoredUpload(Protocol):
    """The committed state of an upload the store works from (``repository.Upload``)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def length(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def object_key(self) -> str: ...
    @property
    def s3_upload_id(self) -> str | None: ...
    @property
    def parts(self) -> list[UploadedPart]: ...
    @property
    def segments(self) -> list[Segment]: ...
    @property
    def tail_size(self) -> int: ...
    @property
    def received_sha256(self) -> str | None: ...
    @property
    def object_version_id(self) -> str | None: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


class UploadStore(Protocol):
    bucket: str

    async def create(self, upload_id: uuid.UUID, *, key: str, content_type: str,
                     recorded_at: str) -> str:
        """Start storing a new upload; returns the backend's id for it."""

    async def append(self, upload: StoredUpload, body: AsyncIterable[bytes],
                     *, expected: int | None = None) -> Chunk:
        """Read ``body`` (appended at ``upload.offset``) and store every full part of it, and
        the last part if the body brings the file's last byte. ``expected``: the bytes the
        body announced (its Content-Length), when known, so that the end of the body can go
        into its last part instead of below one.

        Raises ``StorageUnavailable``/``StorageFull``; nothing is committed by the store."""

    async def seal(self, upload: StoredUpload, chunk: Chunk, *, ledger: Ledger) -> None:
        """Store what of ``chunk`` is below a part as a tail segment (``append`` already sent
        the file's last part when the chunk brought the last byte)."""

    def committed(self, upload: StoredUpload, chunk: Chunk) -> None:
        """The caller committed ``chunk``: its running hash and tail become current."""

    async def release(self, chunk: Chunk) -> list[Segment]:
        """Remove the segments ``chunk`` superseded (best effort); returns the removed ones."""

    async def finish(self, upload: StoredUpload) -> Finished:
        """Turn every stored byte into the recording; raises ``StoredBytesLost``."""

    async def abort(self, upload: StoredUpload) -> bool:
        """Remove every stored byte of an upload that is not kept (R5); ``True`` when done."""

    async def discard(self, upload: StoredUpload) -> bool:
        """After completion: remove the segments; the recording stays. ``True`` when done."""
