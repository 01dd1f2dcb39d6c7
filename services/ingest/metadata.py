"""``Upload-Metadata`` parsing and the R1/R2 checks a recording must pass before any byte lands.

Every refusal names the offending key, so a device's operator can see what to fix. The header
is bounded (``MAX_METADATA_BYTES``, ``MAX_METADATA_PAIRS``); keys this service does not know
(``KNOWN_KEYS``) are ignored and not stored — tus clients such as Uppy add their own (``name``,
``type``) and must keep working — and the ``Upload-Metadata`` a HEAD returns is re-encoded from
the known keys only. Text values are checked by the shared types of ``bwc.text``.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta

from pydantic import BaseModel

from bwc.deadline import deletion_deadline, is_past_deadline
from bwc.instants import to_utc
from bwc.problems import Problem
from bwc.text import IDENTIFIER, LONG_TEXT, SHORT_TEXT, TextKind

# Patterns are applied with fullmatch: with ``$``, "video/mp4\n" matched and reached S3 as a
# header.
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Stored as the object's Content-Type and served back later: media types only, nothing a
# browser would render as a page.
_CONTENT_TYPE = re.compile(r"(video|audio)/[A-Za-z0-9.+-]{1,100}|application/octet-stream")
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_BOOL = {"true": True, "false": False}
#: The whole header: the longest legitimate one (a 2,000-character reason) is about 3.5 KB.
MAX_METADATA_BYTES = 8192
MAX_METADATA_PAIRS = 32
KNOWN_KEYS = frozenset({
    "filename", "content_type", "device_id", "officer_id", "recorded_at", "ended_at",
    "trigger_reason", "announced", "imminent_danger", "in_home", "location", "sha256",
})


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
    """Decode the tus ``key base64value,key2 base64value2`` list; only ``KNOWN_KEYS`` are
    returned."""
    if not header:
        raise Problem(400, "Invalid upload metadata", "the Upload-Metadata header is required",
                      field="Upload-Metadata")
    if len(header) > MAX_METADATA_BYTES:
        raise Problem(400, "Invalid upload metadata",
                      f"Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes",
                      field="Upload-Metadata")
    pairs = [p.strip() for p in header.split(",") if p.strip()]
    if len(pairs) > MAX_METADATA_PAIRS:
        raise Problem(400, "Invalid upload metadata",
                      f"Upload-Metadata has more than {MAX_METADATA_PAIRS} keys",
                      field="Upload-Metadata")
    values: dict[str, str] = {}
    seen: set[str] = set()
    for pair in pairs:
        key, _, encoded = pair.partition(" ")
        if _KEY.fullmatch(key) is None:
            raise invalid(key[:64], "is not a valid key (letters, digits, '_', '.', '-')")
        if key in seen:
            raise invalid(key, "given twice")
        seen.add(key)
        if key not in KNOWN_KEYS:
            continue
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, or a non-ASCII value
            raise invalid(key, "value is not base64-encoded UTF-8") from None
    return values


def encode_header(values: dict[str, str]) -> str:
    """The ``Upload-Metadata`` to store and return on HEAD: the known keys only."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k
                    for k, v in values.items())


def _text(kind: TextKind, key: str, value: str) -> str:
    try:
        return kind.check(value)
    except ValueError as exc:
        raise invalid(key, str(exc)) from None


def _required(values: dict[str, str], key: str, kind: TextKind) -> str:
    value = values.get(key, "").strip()
    if not value:
        raise invalid(key, "is required")
    return _text(kind, key, value)


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
        raise invalid(key, f"is not an RFC 3339 timestamp: {raw[:100]!r}") from None
    try:
        return to_utc(parsed)
    except ValueError as exc:
        raise invalid(key, str(exc)) from None


def _location(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        lat_s, lon_s = raw.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise invalid("location", f"must be 'lat,lon' in decimal degrees, got {raw[:100]!r}"
                      ) from None
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

    trigger_reason = _required(values, "trigger_reason", LONG_TEXT)  # R1: a danger is named
    announced = _bool(values, "announced")
    imminent_danger = _bool(values, "imminent_danger", default=False)
    if not announced and not imminent_danger:
        # R1: skipping the announcement is lawful only under imminent danger.
        raise invalid("imminent_danger", "must be true when announced is false (R1)")

    sha256 = values.get("sha256", "").strip().lower() or None
    if sha256 is not None and not _HEX64.fullmatch(sha256):
        raise invalid("sha256", "must be the 64-character hex SHA-256 of the whole file")

    content_type = values.get("content_type") or "application/octet-stream"
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise invalid("content_type", f"must be video/*, audio/* or application/octet-stream, "
                      f"got {content_type[:100]!r}")
    filename = values.get("filename") or None
    if filename is not None:
        _text(SHORT_TEXT, "filename", filename)  # shown to reviewers: no bidi tricks
        if any(c in "/\\" for c in filename):
            raise invalid("filename", "must be a plain file name without path separators")

    return RecordingMetadata(
        device_id=_required(values, "device_id", IDENTIFIER),
        officer_id=(_required(values, "officer_id", IDENTIFIER)
                    if values.get("officer_id", "").strip() else None),
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
