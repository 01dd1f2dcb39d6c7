"""``Upload-Metadata`` parsing and the R1/R2 checks a recording must pass before any byte lands.

Every refusal names the offending key, so a device's operator can see what to fix.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from bwc.deadline import deletion_deadline, is_past_deadline
from bwc.problems import Problem

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Stored as the object's Content-Type and served back later: media types only, nothing a
# browser would render as a page.
_CONTENT_TYPE = re.compile(r"^(video|audio)/[A-Za-z0-9.+-]{1,100}$|^application/octet-stream$")
MAX_FILENAME = 255
_BOOL = {"true": True, "false": False}
MAX_TEXT = 2000


class RecordingMetadata(BaseModel):
    device_id: str
    officer_id: str | None
    recorded_at: datetime
    ended_at: datetime | None
    trigger_reason: str
    announced: bool
    imminent_danger: bool
    in_home: bool
    location: str | None
    filename: str | None
    content_type: str
    sha256: str | None


def invalid(field: str, message: str) -> Problem:
    return Problem(400, "Invalid upload metadata", f"Upload-Metadata '{field}': {message}",
                   field=field)


def parse_header(header: str | None) -> dict[str, str]:
    """Decode the tus ``key base64value,key2 base64value2`` list."""
    if not header:
        raise Problem(400, "Invalid upload metadata", "the Upload-Metadata header is required",
                      field="Upload-Metadata")
    values: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, encoded = pair.partition(" ")
        if key in values:
            raise invalid(key, "given twice")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise invalid(key, "value is not base64-encoded UTF-8") from None
    return values


def _required(values: dict[str, str], key: str) -> str:
    value = values.get(key, "").strip()
    if not value:
        raise invalid(key, "is required")
    return value


def _bool(values: dict[str, str], key: str, *, default: bool | None = None) -> bool:
    raw = values.get(key)
    if raw is None or raw == "":
        if default is None:
            raise invalid(key, "is required (true or false)")
        return default
    if raw.lower() not in _BOOL:
        raise invalid(key, f"must be 'true' or 'false', got {raw!r}")
    return _BOOL[raw.lower()]


def _timestamp(values: dict[str, str], key: str) -> datetime | None:
    raw = values.get(key)
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(key, f"is not an RFC 3339 timestamp: {raw!r}") from None
    if parsed.tzinfo is None:
        raise invalid(key, "needs a time zone (RFC 3339, e.g. 2026-11-24T08:15:00Z)")
    return parsed.astimezone(UTC)


def _location(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        lat_s, lon_s = raw.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise invalid("location", f"must be 'lat,lon' in decimal degrees, got {raw!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise invalid("location", "latitude or longitude out of range")
    return f"{lat},{lon}"


def validate(
    values: dict[str, str],
    *,
    now: datetime,
    retention_period: timedelta,
    clock_skew: timedelta,
) -> RecordingMetadata:
    recorded_at = _timestamp(values, "recorded_at")
    if recorded_at is None:
        raise invalid("recorded_at", "is required")
    if recorded_at > now + clock_skew:
        raise invalid("recorded_at", f"lies in the future ({recorded_at.isoformat()}); "
                      "check the device clock")
    deadline = deletion_deadline(recorded_at, retention_period=retention_period, now=now)
    if is_past_deadline(deadline, now=now):
        # R2: nothing of a recording past its deadline may be kept, so it is not even started.
        raise Problem(
            422,
            "Retention deadline already passed",
            f"Upload-Metadata 'recorded_at': a recording made at {recorded_at.isoformat()} had "
            f"to be deleted by {deadline.isoformat()} (R2); it is refused and nothing is stored",
            field="recorded_at",
        )
    ended_at = _timestamp(values, "ended_at")
    if ended_at is not None and ended_at < recorded_at:
        raise invalid("ended_at", "lies before recorded_at")
    if ended_at is not None and ended_at > now + clock_skew:
        raise invalid("ended_at", "lies in the future; check the device clock")

    trigger_reason = _required(values, "trigger_reason")  # R1: a concrete danger is named
    if len(trigger_reason) > MAX_TEXT:
        raise invalid("trigger_reason", f"is longer than {MAX_TEXT} characters")
    announced = _bool(values, "announced")
    imminent_danger = _bool(values, "imminent_danger", default=False)
    if not announced and not imminent_danger:
        # R1: skipping the announcement is lawful only under imminent danger.
        raise invalid("imminent_danger", "must be true when announced is false (R1)")

    sha256 = values.get("sha256", "").strip().lower() or None
    if sha256 is not None and not _HEX64.match(sha256):
        raise invalid("sha256", "must be the 64-character hex SHA-256 of the whole file")

    content_type = values.get("content_type") or "application/octet-stream"
    if not _CONTENT_TYPE.match(content_type):
        raise invalid("content_type", f"must be video/*, audio/* or application/octet-stream, "
                      f"got {content_type[:100]!r}")
    filename = values.get("filename") or None
    if filename is not None and (len(filename) > MAX_FILENAME or
                                 any(ord(c) < 32 or c in "/\\" for c in filename)):
        raise invalid("filename", f"must be a plain file name of at most {MAX_FILENAME} "
                      "characters without path separators or control characters")

    return RecordingMetadata(
        device_id=_required(values, "device_id"),
        officer_id=values.get("officer_id", "").strip() or None,
        recorded_at=recorded_at,
        ended_at=ended_at,
        trigger_reason=trigger_reason,
        announced=announced,
        imminent_danger=imminent_danger,
        in_home=_bool(values, "in_home", default=False),
        location=_location(values.get("location")),
        filename=filename,
        content_type=content_type,
        sha256=sha256,
    )
