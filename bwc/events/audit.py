"""The one payload on ``audit.v1``: an access to or a change of something the law protects (R7).

The catalogue appends every such event to one hash chain; auditors read it. An audit entry
outlives the recording it is about (two years), so it names the recording by id only and holds
no content of the recording.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bwc.text import Identifier, LongText


class AuditAction(StrEnum):
    """A closed set: an auditor filters by it, so a typo must not invent a new action."""

    VIEW_METADATA = "view_metadata"
    SEARCH = "search"
    VIEW_MEDIA = "view_media"
    EXPORT = "export"
    HOLD_PLACED = "hold_placed"
    HOLD_RELEASED = "hold_released"
    REVIEW = "review"
    JUDICIAL_CONFIRMATION = "judicial_confirmation"
    DELETION = "deletion"
    DELETION_REFUSED = "deletion_refused"
    DEVICE_REGISTERED = "device_registered"
    DEVICE_CHANGED = "device_changed"


class AuditService(StrEnum):
    INGEST = "ingest"
    CATALOG = "catalog"
    REVIEW = "review"
    RETENTION = "retention"


class AuditEventV1(BaseModel):
    """``audit.recorded``: who did what, when, to which recording, and why."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = 1
    actor: Identifier  # the token's ``sub``; the service's own name for automatic steps
    role: Identifier  # the role the actor acted in (``system`` for automatic steps)
    action: AuditAction
    recording_id: uuid.UUID | None = None
    purpose: LongText | None = None  # required by the API for media access (R7)
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. byte range, device id, hold id
    request_id: str | None = Field(default=None, max_length=200)
    occurred_at: AwareDatetime
    source_service: AuditService
