"""A recording's media, streamed with HTTP Range so a browser's video player can seek, and
every request audited with its purpose (R7).

``GET /api/v1/recordings/{id}/media?purpose=`` (reviewer, supervisor):

1. the recording and the range are decided by a short read; the stored object is opened
   (the exact version ``recording.ingested`` named) with no database connection held, before
   the answer starts: S3 trouble is a 503 with ``Retry-After``, not a broken body, and
   records nothing, as nothing was shown; a version already gone from S3 is 410;
2. one ``view_media`` audit entry per request — actor, role, purpose, the bytes sent
   (``bytes a-b/size``, the whole object's range too) and the result (``ok``, ``unknown``,
   ``deleted``, ``expired``, ``range_not_satisfiable``) — committed before a byte is sent,
   decided again in the transaction that writes it; refused attempts are recorded too, then
   answered 404 / 410 / 416 (the rule of every access to a recording, as in the catalogue and
   the export);
3. the bytes stream through in pieces of 1 MiB: memory stays flat whatever the size.

The ETag is the recording's SHA-256 (strong: it names exactly these bytes), which ``If-Range``
is compared with. Range rules: ``ranges``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import Response, StreamingResponse

from bwc import audit
from bwc.audit import Actor
from bwc.auth import Role
from bwc.events import AuditAction, AuditService
from bwc.problems import Problem
from bwc.routing import api_router, problem_responses
from services.review import ranges, view
from services.review.deps import PoolDep, Purpose, SettingsDep, StoreDep, ViewerDep
from services.review.stored_object import StoredObjectGone, gone, open_stored
from services.review.view import Recording

router = api_router(prefix="/api/v1", tags=["review"])

#: What ingest accepts as a recording's type (``services/ingest/metadata.py``).
MEDIA_TYPES = ("video/*", "audio/*", "application/octet-stream")

_MEDIA_CONTENT: dict[str, Any] = {t: {"schema": {"type": "string", "format": "binary"}}
                                  for t in MEDIA_TYPES}
_MEDIA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the whole recording", "content": _MEDIA_CONTENT},
    206: {"description": "the requested byte range (`Content-Range`)", "content": _MEDIA_CONTENT},
    **problem_responses(404, 410, 416),
}


@dataclass(frozen=True)
class _Answer:
    """What one media request gets, and what its audit entry says."""

    result: str  # ok, unknown, deleted, expired, range_not_satisfiable
    recording: Recording | None = None
    byte_range: ranges.ByteRange | None = None
    refused: Problem | None = None

    @property
    def sent(self) -> str | None:
        """The bytes that go out, ``bytes a-b/size`` (R7: every view names its range)."""
        if self.refused is not None or self.recording is None:
            return None
        if self.byte_range is not None:
            return self.byte_range.content_range
        size = self.recording.size_bytes
        return f"bytes 0-{size - 1}/{size}" if size else None


def _answer(
    found: view.Lookup, now: datetime, range_header: str | None, if_range: str | None
) -> _Answer:
    try:
        recording = found.available(now)
    except Problem as problem:
        return _Answer("expired" if found.result == "ok" else found.result, refused=problem)
    try:
        byte_range = ranges.requested_range(
            range_header, recording.size_bytes, if_range=if_range,
            etag=ranges.strong_etag(recording.sha256))
    except ranges.Unsatisfiable as exc:
        return _Answer("range_not_satisfiable", recording, refused=Problem(
            416, "Range not satisfiable",
            f"recording {recording.id} has {recording.size_bytes} bytes; the range "
            f"{range_header!r} asks for none of them",
            headers={"Content-Range": exc.content_range}))
    return _Answer("ok", recording, byte_range)


@router.get("/recordings/{recording_id}/media",
            summary="A recording's media with HTTP Range, audited with its purpose "
                    "(roles: reviewer, supervisor)",
            response_class=StreamingResponse, responses=_MEDIA_RESPONSES)
async def get_media(
    recording_id: uuid.UUID, purpose: Purpose, viewer: ViewerDep, pool: PoolDep,
    store: StoreDep, settings: SettingsDep,
    range_header: Annotated[str | None, Header(
        alias="Range", description="one byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`; "
                                   "several ranges get the whole recording")] = None,
    if_range: Annotated[str | None, Header(
        alias="If-Range", description="the ETag the client holds: the range is sent only "
                                      "if it still matches, else the whole recording")] = None,
) -> Response:
    await view.wait_for_arrival(pool, recording_id, wait=settings.review_arrival_wait)
    # A short read first: no database connection is held while S3 answers.
    async with pool.acquire() as conn:
        answer = _answer(await view.lookup(conn, recording_id), datetime.now(UTC),
                         range_header, if_range)
    body: AsyncGenerator[bytes, None] | None = None
    if answer.recording is not None and answer.refused is None:
        offset, length = ((answer.byte_range.start, answer.byte_range.length)
                          if answer.byte_range else (0, 0))
        try:
            # S3 away: 503, and nothing is recorded, as nothing was shown.
            body = await open_stored(store, answer.recording, outcome="nothing was sent",
                                     offset=offset, length=length)
        except StoredObjectGone:
            answer = _Answer("deleted", refused=gone(recording_id))
    try:
        async with audit.transaction(pool) as conn:
            if body is not None:
                # The state the entry is written in decides: deleted or due meanwhile → refused.
                again = _answer(await view.lookup(conn, recording_id), datetime.now(UTC),
                                range_header, if_range)
                answer = again if again.refused is not None else answer
            await audit.record(
                conn, service=AuditService.REVIEW,
                actor=Actor.of(viewer, Role.SUPERVISOR, Role.REVIEWER),
                action=AuditAction.VIEW_MEDIA, recording_id=recording_id, purpose=purpose,
                details={"range": answer.sent,
                         "size_bytes": answer.recording.size_bytes if answer.recording else None,
                         "result": answer.result})
        if answer.refused is not None:
            raise answer.refused
    except BaseException:
        if body is not None:  # refused, or the entry did not commit: not a byte goes out
            await body.aclose()
        raise
    recording, byte_range = answer.recording, answer.byte_range
    assert recording is not None and body is not None

    headers = {"Accept-Ranges": "bytes", "ETag": ranges.strong_etag(recording.sha256),
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if byte_range is None:
        headers["Content-Length"] = str(recording.size_bytes)
        return StreamingResponse(body, media_type=recording.content_type, headers=headers)
    headers |= {"Content-Length": str(byte_range.length),
                "Content-Range": byte_range.content_range}
    return StreamingResponse(body, status_code=206, media_type=recording.content_type,
                             headers=headers)
