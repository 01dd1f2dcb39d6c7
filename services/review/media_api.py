"""A recording's media, streamed with HTTP Range so a browser's video player can seek, and
every request audited with its purpose (R7).

``GET /api/v1/recordings/{id}/media?purpose=`` (reviewer, supervisor):

1. the stored object is opened (the exact version ``recording.ingested`` named) before the
   answer starts, so S3 trouble is a 503 with ``Retry-After``, not a broken body — and
   records nothing, as nothing was shown;
2. one ``view_media`` audit entry per request — actor, role, purpose, the byte range sent and
   the result (``ok``, ``unknown``, ``deleted``, ``expired``, ``range_not_satisfiable``) —
   committed before a byte is sent; refused attempts are recorded too, then answered 404 /
   410 / 416 (the rule of every access to a recording, as in the catalogue and the export);
3. the bytes stream through in pieces of 1 MiB: memory stays flat whatever the size.

The ETag is the recording's SHA-256 (strong: it names exactly these bytes), which ``If-Range``
is compared with. Range rules: ``ranges``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
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
from services.review.stored_object import open_stored
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


def _select(
    found: view.Lookup, now: datetime, range_header: str | None, if_range: str | None
) -> tuple[Recording, ranges.ByteRange | None]:
    """The recording and the range to send, or the Problem that refuses them."""
    recording = found.available(now)
    try:
        return recording, ranges.requested_range(
            range_header, recording.size_bytes, if_range=if_range,
            etag=ranges.strong_etag(recording.sha256))
    except ranges.Unsatisfiable as exc:
        raise Problem(416, "Range not satisfiable",
                      f"recording {recording.id} has {recording.size_bytes} bytes; the range "
                      f"{range_header!r} asks for none of them",
                      headers={"Content-Range": exc.content_range}) from exc


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
    refused: Problem | None = None
    recording: Recording | None = None
    byte_range: ranges.ByteRange | None = None
    body: AsyncGenerator[bytes, None] | None = None
    try:
        async with audit.transaction(pool) as conn:
            found = await view.lookup(conn, recording_id)
            result = found.result  # ok, unknown, deleted
            try:
                recording, byte_range = _select(found, datetime.now(UTC), range_header,
                                                if_range)
            except Problem as problem:
                refused = problem
                if result == "ok":
                    result = "range_not_satisfiable" if problem.status == 416 else "expired"
            if recording is not None and refused is None:
                # Before the entry: S3 away is a 503 that records nothing (nothing shown).
                offset, length = (byte_range.start, byte_range.length) if byte_range else (0, 0)
                body = await open_stored(store, recording, outcome="nothing was sent",
                                         offset=offset, length=length)
            await audit.record(
                conn, service=AuditService.REVIEW,
                actor=Actor.of(viewer, Role.SUPERVISOR, Role.REVIEWER),
                action=AuditAction.VIEW_MEDIA, recording_id=recording_id, purpose=purpose,
                details={"range": byte_range.content_range if byte_range else None,
                         "size_bytes": found.recording.size_bytes if found.recording else None,
                         "result": result})
    except BaseException:
        if body is not None:  # the entry did not commit: not a byte goes out
            await body.aclose()
        raise
    if refused is not None or recording is None or body is None:
        raise refused or AssertionError("a recording or a refusal")

    headers = {"Accept-Ranges": "bytes", "ETag": ranges.strong_etag(recording.sha256),
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if byte_range is None:
        headers["Content-Length"] = str(recording.size_bytes)
        return StreamingResponse(body, media_type=recording.content_type, headers=headers)
    headers |= {"Content-Length": str(byte_range.length),
                "Content-Range": byte_range.content_range}
    return StreamingResponse(body, status_code=206, media_type=recording.content_type,
                             headers=headers)
