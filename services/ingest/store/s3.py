"""The upload store on S3: one multipart upload per recording, sub-part bytes as segments.

Layout (bucket ``BWC_S3_BUCKET``; every object carries the user metadata ``recording-id`` and
``recorded-at``, DESIGN §4):

- ``recordings/<id>``: the recording, one multipart upload; its parts are uploaded while the
  PATCH body still arrives, ``BWC_INGEST_PARTS_IN_FLIGHT`` at a time per upload, within the
  process's ``BWC_INGEST_MEMORY_BUDGET``; each with Content-MD5, so S3 confirms its bytes.
- ``incomplete/<id>/<start>-<end>-<token>``: bytes ``start``…``end`` that did not fill a part
  when their PATCH ended. Append-only: a PATCH writes one new segment and never reads, rewrites
  or deletes the earlier ones; the PATCH that fills the part takes the tail from memory (or, on
  another process, reads the segments once) and removes them by key and version afterwards.

The PATCH that brings the last byte uploads what is left as the last part itself, so the
completion only completes the multipart upload and checks its size; the SHA-256 was computed
while the bytes arrived. Nothing here lists the bucket, except ``abort_all`` after a crash
during creation, and once per upload that still holds tails written before segments
(migration 005), when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import botocore.exceptions

from bwc.s3 import Multipart, ObjectStore, UploadedPart, as_storage_error
from services.ingest.metrics import CLEANUP_FAILURES, HASH_READ_BACKS
from services.ingest.store.interface import (
    Chunk,
    Finished,
    Ledger,
    Segment,
    StorageFull,
    StorageUnavailable,
    StoredBytesLost,
    StoredUpload,
)
from services.ingest.store.memory import ByteBudget, RunningHashes, TailCache

log = logging.getLogger(__name__)


def segment_prefix(upload_id: uuid.UUID) -> str:
    return f"incomplete/{upload_id}/"


def object_metadata(upload_id: uuid.UUID, recorded_at: str) -> dict[str, str]:
    """What lets the retention scan judge an object no event told it about (DESIGN §4)."""
    return {"recording-id": str(upload_id), "recorded-at": recorded_at}


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Storage failures as the interface names them (503 / 507 to the device)."""
    try:
        yield
    except (StorageUnavailable, StorageFull):
        raise
    except Exception as exc:
        error = as_storage_error(exc)
        if error is None:
            raise
        raise (StorageFull if error.full else StorageUnavailable)(str(error)) from exc


@dataclass
class _Pending:
    """Between ``append`` and ``committed``: what the body left below a part."""

    number: int
    tail_size: int
    buffer: bytearray
    hasher: hashlib._Hash | None
    tail_consumed: bool = False


@dataclass
class _Sender:
    """Parts on their way to S3 while the body goes on arriving (bounded per upload and by the
    process-wide byte budget)."""

    upload: Callable[[int, bytearray], Awaitable[UploadedPart]]
    budget: ByteBudget
    slots: asyncio.Semaphore
    tasks: list[asyncio.Task[UploadedPart]] = field(default_factory=list)

    def _raise_failed(self) -> None:
        for task in self.tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def send(self, number: int, data: bytearray) -> None:
        self._raise_failed()  # stop reading a body whose parts S3 refuses
        await self.slots.acquire()
        try:
            reserved = await self.budget.acquire(len(data))
        except BaseException:
            self.slots.release()
            raise
        self.tasks.append(asyncio.create_task(self._run(number, data, reserved)))

    async def _run(self, number: int, data: bytearray, reserved: int) -> UploadedPart:
        try:
            return await self.upload(number, data)
        finally:
            self.slots.release()
            await self.budget.release(reserved)

    async def settle(self) -> list[UploadedPart]:
        """Every part confirmed, in order; the first failure otherwise (after all ended, so
        the budget is whole again)."""
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sorted((r for r in results if isinstance(r, UploadedPart)), key=lambda p: p.number)


class S3UploadStore:
    def __init__(
        self, objects: ObjectStore, multipart: Multipart, *, part_size: int,
        parts_in_flight: int, memory_budget: int, tail_cache: int,
    ) -> None:
        self.objects = objects
        self.multipart = multipart
        self.bucket = objects.bucket
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self.budget = ByteBudget(max(memory_budget, part_size))
        self.tails = TailCache(tail_cache)
        self.hashes = RunningHashes()

    # -- creation -------------------------------------------------------------------------------

    async def create(self, upload_id: uuid.UUID, *, key: str, content_type: str,
                     recorded_at: str) -> str:
        with translated():
            return await self.multipart.create(
                key, content_type=content_type, metadata=object_metadata(upload_id, recorded_at))

    # -- receiving ------------------------------------------------------------------------------

    async def append(self, upload: StoredUpload, body: AsyncIterable[bytes],
                     *, expected: int | None = None) -> Chunk:
        chunk = Chunk(upload.id, upload.offset)
        pending = _Pending(number=len(upload.parts) + 1, tail_size=upload.tail_size,
                           buffer=bytearray(), hasher=self.hashes.resume(upload.id, upload.offset))
        s3_id = _s3_id(upload)

        async def upload_part(number: int, data: bytearray) -> UploadedPart:
            return await self.multipart.upload_part(upload.object_key, s3_id, number, data)

        sender = _Sender(upload_part, self.budget, asyncio.Semaphore(self.parts_in_flight))

        async def send_part() -> None:
            data = pending.buffer
            if pending.tail_size:
                data = await self._tail(upload) + data
                chunk.superseded = self._current_segments(upload)
                pending.tail_size, pending.tail_consumed = 0, True
            pending.buffer = bytearray()
            await sender.send(pending.number, data)
            pending.number += 1

        try:
            with translated():
                async for piece in body:
                    chunk.received += len(piece)
                    if pending.hasher is not None:
                        pending.hasher.update(piece)
                    view = memoryview(piece)
                    while view:
                        room = self.part_size - pending.tail_size - len(pending.buffer)
                        # A part held open for the end of the body takes the rest of it.
                        pending.buffer += view[:room] if room > 0 else view
                        view = view[room:] if room > 0 else view[:0]
                        if pending.tail_size + len(pending.buffer) < self.part_size:
                            continue
                        if self._holds_part(upload, chunk.received - len(view), expected):
                            continue
                        await send_part()  # the sender holds the part until S3 confirms it
                if chunk.end == upload.length:
                    # The last byte: what is left is the last part (S3 allows it to be small),
                    # sent alongside the parts still in flight. Should the chunk not be kept
                    # (checksum mismatch), it is an unrecorded part like any other.
                    if pending.buffer or pending.tail_size or not (upload.parts
                                                                   or pending.number > 1):
                        await send_part()
                elif pending.tail_size + len(pending.buffer) >= self.part_size:
                    await send_part()  # a part held open for the end of the body
                chunk.parts = await sender.settle()
        finally:
            # On any failure: let the parts in flight end, so the budget is whole again.
            await asyncio.gather(*sender.tasks, return_exceptions=True)
        chunk.state = pending
        return chunk

    def _holds_part(self, upload: StoredUpload, taken: int, expected: int | None) -> bool:
        """Whether a full part is kept open to take in the rest of the body, because the body
        announced fewer than a part's bytes after it and does not end the file: those bytes
        then go into this part (S3 parts may be larger than the part size) rather than into a
        segment, which would be written now and again inside the next part. A PATCH of at
        least a part therefore leaves no segment; the part stays below twice the part size."""
        if expected is None or upload.offset + expected >= upload.length:
            return False
        return 0 < expected - taken < self.part_size

    async def seal(self, upload: StoredUpload, chunk: Chunk, *, ledger: Ledger) -> None:
        pending: _Pending = chunk.state
        with translated():
            if chunk.end == upload.length:  # the last part went with the others (append)
                chunk.tail_size = 0
                if pending.hasher is not None:
                    chunk.sha256 = pending.hasher.hexdigest()
                return
            chunk.tail_size = pending.tail_size + len(pending.buffer)
            if not pending.buffer:
                return
            start = chunk.end - len(pending.buffer)
            key = f"{segment_prefix(upload.id)}{start}-{chunk.end}-{secrets.token_hex(4)}"
            await ledger(key, start)  # named before it exists: a crash now leaves no unknown
            version_id = await self.objects.put_bytes(
                key, pending.buffer, object_metadata(upload.id, upload.metadata["recorded_at"]))
            chunk.segment = Segment(key, start, chunk.end, version_id)

    def committed(self, upload: StoredUpload, chunk: Chunk) -> None:
        pending: _Pending = chunk.state
        if chunk.end >= upload.length:
            self.hashes.forget(upload.id)
            self.tails.forget(upload.id)
            return
        if pending.hasher is not None:
            self.hashes.store(upload.id, chunk.end, pending.hasher)
        else:
            self.hashes.forget(upload.id)
        if not chunk.received:
            return
        if pending.tail_consumed or not upload.tail_size:
            self.tails.put(upload.id, chunk.end, pending.buffer)
            return
        prior = self.tails.get(upload.id, upload.offset, upload.tail_size)
        self.tails.forget(upload.id)
        if prior is not None:
            prior.extend(pending.buffer)
            self.tails.put(upload.id, chunk.end, prior)

    async def release(self, chunk: Chunk) -> list[Segment]:
        if not chunk.superseded:
            return []
        try:
            await self._remove_segments(chunk.superseded)
        except Exception as exc:
            # Still named by their rows: removed at completion or by the janitor.
            log.warning("could not remove superseded segments", extra={
                "recording_id": str(chunk.upload_id), "error": repr(exc)})
            return []
        return chunk.superseded

    # -- the end --------------------------------------------------------------------------------

    async def finish(self, upload: StoredUpload) -> Finished:
        parts = list(upload.parts)
        version_id: str | None
        try:
            if upload.tail_size or not parts:
                # Only after a PATCH that could not send the last part (an older version of
                # this service, or bytes left in segments): it goes now, under the same number
                # each time.
                parts.append(await self.multipart.upload_part(
                    upload.object_key, _s3_id(upload), len(parts) + 1, await self._tail(upload)))
        except botocore.exceptions.ClientError:
            # S3 refuses a part of an upload an earlier attempt completed before it died
            # (NoSuchUpload; moto answers 500): the object is there, take it as it is.
            stat = await self.objects.stat(upload.object_key)
            if stat is None:
                raise
            version_id = stat.version_id
        else:
            version_id = await self._complete_or_find(upload, parts)
        self.hashes.forget(upload.id)
        self.tails.forget(upload.id)
        if upload.received_sha256 is not None:
            stat = await self.objects.stat(upload.object_key, version_id)
            if stat is None:
                raise StoredBytesLost(f"upload {upload.id}: the completed object is gone")
            return Finished(upload.received_sha256, int(stat.size), version_id, read_back=False)
        # The running hash was lost (a restart, or chunks arrived at several replicas): the
        # stored bytes are read back once, here (R6).
        HASH_READ_BACKS.inc()
        sha256, size = await self.objects.sha256(upload.object_key, version_id)
        return Finished(sha256, size, version_id, read_back=True)

    async def _complete_or_find(self, upload: StoredUpload, parts: list[UploadedPart]
                                ) -> str | None:
        try:
            return await self.multipart.complete(upload.object_key, _s3_id(upload), parts)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise
        # Completed by an earlier attempt that crashed before recording it.
        stat = await self.objects.stat(upload.object_key)
        if stat is None:
            raise StoredBytesLost(
                f"upload {upload.id}: the multipart upload and the object are gone")
        version_id: str | None = stat.version_id
        return version_id

    async def abort(self, upload: StoredUpload) -> bool:
        """Every byte: parts, every version of the recording's key, every segment (R5). Each
        step is tried even if an earlier one failed."""
        self.hashes.forget(upload.id)
        self.tails.forget(upload.id)
        key, s3_id = upload.object_key, upload.s3_upload_id
        results = [
            # No recorded upload id: the process died right after creating it; find it by key.
            await _step("abort_multipart", upload,
                        (lambda: self.multipart.abort(key, s3_id)) if s3_id is not None
                        else (lambda: self.multipart.abort_all(key))),
            await _step("delete_object", upload, lambda: self.objects.delete_key(key)),
            await _step("delete_tails", upload,
                        lambda: self._remove_segments(upload.segments)),
        ]
        return all(results)

    async def discard(self, upload: StoredUpload) -> bool:
        self.hashes.forget(upload.id)
        self.tails.forget(upload.id)
        return await _step("delete_tails", upload,
                           lambda: self._remove_segments(upload.segments))

    # -- segments -------------------------------------------------------------------------------

    def _current_segments(self, upload: StoredUpload) -> list[Segment]:
        """The committed segments holding the bytes after the last part, in order."""
        parts_end = sum(p.size for p in upload.parts)
        return sorted((s for s in upload.segments if s.end is not None and s.start >= parts_end),
                      key=lambda s: s.start)

    async def _tail(self, upload: StoredUpload) -> bytearray:
        """The bytes after the last part: from memory, or read once from their segments."""
        parts_end = sum(p.size for p in upload.parts)
        cached = self.tails.get(upload.id, parts_end + upload.tail_size, upload.tail_size)
        if cached is not None:
            return cached
        data = bytearray()
        for segment in self._current_segments(upload):
            if segment.start != parts_end + len(data):
                raise StoredBytesLost(f"upload {upload.id}: segment {segment.key} does not "
                                      f"start at byte {parts_end + len(data)}")
            assert segment.end is not None
            data += await self.objects.read_bytes(segment.key, segment.end - segment.start,
                                                  segment.version_id)
        if len(data) != upload.tail_size:
            raise StoredBytesLost(f"upload {upload.id}: {len(data)} bytes in segments, "
                                  f"{upload.tail_size} expected")
        return data

    async def _remove_segments(self, segments: list[Segment]) -> None:
        known = [(s.key, s.version_id) for s in segments if s.version_id is not None]
        await self.objects.delete_versions(known)
        for segment in segments:
            if segment.key.endswith("/"):
                # Tails written before segments, named only by their prefix (migration 005):
                # listed once, when the upload ends (R5).
                await self.objects.delete_prefix(segment.key)
            elif segment.version_id is None:  # announced, maybe written, never committed
                await self.objects.delete_key(segment.key)


def _s3_id(upload: StoredUpload) -> str:
    if upload.s3_upload_id is None:
        raise RuntimeError(f"upload {upload.id} has no multipart upload")
    return upload.s3_upload_id


async def _step(name: str, upload: StoredUpload,
                action: Callable[[], Awaitable[object]]) -> bool:
    try:
        await action()
    except Exception as exc:
        CLEANUP_FAILURES.labels(name).inc()
        log.warning("removal step failed; the janitor retries it",
                    extra={"recording_id": str(upload.id), "step": name, "error": repr(exc)})
        return False
    return True
