"""Payloads on ``recordings.v1`` (Kafka key = recording id, so one recording's events keep their
order). Every model is a tolerant reader: a producer one version ahead may add fields.

Free text uses the shared text kinds (``bwc.text``): an event is read by people on screens and
written into Postgres, so the same characters are refused here as at the API.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt

from bwc.text import Identifier, LongText, ShortText

SHA256_HEX = r"^[0-9a-f]{64}$"


class _RecordingEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = 1
    recording_id: uuid.UUID


class RecordingIngestedV1(_RecordingEvent):
    """``recording.ingested``: a recording is fully stored and its hash recorded (R6)."""

    device_id: Identifier
    officer_id: Identifier | None
    recorded_at: AwareDatetime
    ended_at: AwareDatetime | None
    uploaded_at: AwareDatetime
    size_bytes: NonNegativeInt
    sha256: str = Field(pattern=SHA256_HEX)
    content_type: ShortText
    filename: ShortText | None
    trigger_reason: LongText
    announced: bool
    imminent_danger: bool
    in_home: bool
    location: ShortText | None
    bucket: str
    object_key: str
    object_version_id: str | None
    delete_after: AwareDatetime


class ReviewOutcome(StrEnum):
    """What a review found. Keeping a recording as evidence is a hold (R3), not an outcome."""

    NO_EVIDENCE = "no_evidence"


class RecordingReviewedV1(_RecordingEvent):
    """``recording.reviewed``: a reviewer looked at the recording ("Sichtung")."""

    outcome: ReviewOutcome
    note: LongText | None = None
    reviewer: Identifier
    reviewed_at: AwareDatetime


class HoldReason(StrEnum):
    """The four exceptions to the deadline (R3)."""

    OWI = "owi"  # administrative-offence proceedings (Ordnungswidrigkeit)
    CRIMINAL = "criminal"
    DANGER = "danger"  # averting a danger
    DATA_SUBJECT_REQUEST = "data_subject_request"  # the person recorded asks to check lawfulness


class RecordingHoldPlacedV1(_RecordingEvent):
    """``recording.hold_placed``: the recording is kept as evidence (R3); the object-lock legal
    hold is already set on every stored version when this is emitted (R6)."""

    hold_id: uuid.UUID
    reason: HoldReason
    case_reference: ShortText  # Aktenzeichen
    justification: LongText
    placed_by: Identifier
    placed_at: AwareDatetime


class RecordingHoldReleasedV1(_RecordingEvent):
    """``recording.hold_released``: a supervisor other than the placer released it (R4)."""

    hold_id: uuid.UUID
    released_by: Identifier
    released_at: AwareDatetime
    justification: LongText


class DeletionReason(StrEnum):
    DEADLINE = "deadline"  # R2: the deadline passed with no hold standing
    HOLD_RELEASED_AFTER_DEADLINE = "hold_released_after_deadline"
    SAFETY_NET = "safety_net"  # found by the bucket scan, no event announced it


class RemovedItem(BaseModel):
    """One thing the hard delete removed (R5): an object version, a delete marker or a
    multipart upload in progress."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["object_version", "delete_marker", "multipart_upload"]
    key: str
    version_id: str | None = None
    upload_id: str | None = None


class RecordingDeletedV1(_RecordingEvent):
    """``recording.deleted``: every stored byte is gone (R5). Carries no content: only what the
    deletion record needs. ``sha256``/``size_bytes`` are unknown for a safety-net deletion of an
    object no event announced."""

    deleted_at: AwareDatetime
    reason: DeletionReason
    sha256: str | None = Field(default=None, pattern=SHA256_HEX)
    size_bytes: NonNegativeInt | None = None
    removed: list[RemovedItem] = Field(default_factory=list)
