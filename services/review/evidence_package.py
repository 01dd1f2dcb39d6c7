"""The evidence package (R6, R7, R8): a zip made on the fly while it is sent.

Members, in this order (the format is ``bwc/evidence.py``'s, which ``bwc export verify``
checks; ``docs/review.md`` states it for its readers)::

    metadata.json          the recording as review knows it, its holds, the judicial
                           confirmation, and who exported it when and why
    audit-trail.jsonl      the recording's entries of the audit hash chain, one per line, in
                           the line format of ``bwc audit export`` (``audit_chain.entry_line``)
    media/<id><ext>        the stored bytes, the exact version ``recording.ingested`` named
    SHA256SUMS             ``<hex>  <path>`` for each member above: ``sha256sum -c SHA256SUMS``

Nothing is ever held whole: the zip is written by stdlib ``zipfile`` into an unseekable sink
(sizes and CRCs go into data descriptors after each member) and sent piece by piece; the media
goes through in the 1 MiB pieces S3 gives (``ZIP_STORED``: video does not compress, and ZIP64
from the start, since the size only is known to be below 4 GiB). The audit trail waits in a
spooled temporary file, in memory up to 1 MiB.

**The media is hashed as it passes.** If its SHA-256 or size is not what ingest recorded, the
stream stops with ``IntegrityError`` before the last piece of the media, the ``SHA256SUMS``
and the zip's central directory are sent: the client gets a broken download, never a package
whose checksums lie about tampered or rotten bytes. The failure is logged and counted
(``bwc_export_integrity_failures_total``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import re
import tempfile
import uuid
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from bwc.audit_chain import entry_line
from bwc.evidence import FORMAT, MEDIA_DIR, METADATA, SUMS, TRAIL
from services.review.view import Recording

log = logging.getLogger(__name__)

#: Audit trail bytes kept in memory before the temporary file goes to disk.
TRAIL_IN_MEMORY = 1024 * 1024
#: Pieces of the audit trail sent at a time.
PIECE = 1024 * 1024

INTEGRITY_FAILURES = Counter(
    "bwc_export_integrity_failures_total",
    "Evidence exports stopped because the stored bytes did not match the recorded SHA-256 "
    "or size (R6)")

_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")
#: Python's own table of types, without the host's ``/etc/mime.types``: the same recording gets
#: the same member name on every machine.
_TYPES = mimetypes.MimeTypes()


class IntegrityError(Exception):
    """The stored bytes are not the bytes ingest recorded (R6)."""


def media_path(recording: Recording) -> str:
    """``media/<id><ext>``: the extension from the recorded type (checked at ingest), else
    from the device's file name if it is a plain one, else ``.bin``."""
    extension = None
    if recording.content_type != "application/octet-stream":
        extension = _TYPES.guess_extension(recording.content_type, strict=False)
    if extension is None and recording.filename:
        suffix = "." + recording.filename.rsplit(".", 1)[-1] if "." in recording.filename else ""
        extension = suffix.lower() if _EXTENSION.fullmatch(suffix) else None
    return f"{MEDIA_DIR}{recording.id}{extension or '.bin'}"


class AuditTrail:
    """The recording's chain entries as ``audit-trail.jsonl`` lines, spooled (in memory up to
    1 MiB, then a temporary file that is gone when closed), with their SHA-256."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=TRAIL_IN_MEMORY)  # noqa: SIM115
        self._digest = hashlib.sha256()
        self.entries = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None

    def add(self, *, seq: int, prev_hash: bytes, digest: bytes, canonical_bytes: bytes) -> None:
        line = (entry_line(seq, prev_hash, digest, canonical_bytes) + "\n").encode()
        self._file.write(line)
        self._digest.update(line)
        self.entries += 1
        self.first_seq = seq if self.first_seq is None else self.first_seq
        self.last_seq = seq

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def pieces(self) -> Iterator[bytes]:
        self._file.seek(0)
        while piece := self._file.read(PIECE):
            yield piece

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Export:
    """Who exported the recording, when, why (the ``export`` audit entry says the same)."""

    exported_at: datetime
    exported_by: str
    role: str
    purpose: str
    request_id: str | None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def metadata(
    recording: Recording, *, holds: Sequence[Mapping[str, Any]],
    confirmation: Mapping[str, Any] | None, export: Export, trail: AuditTrail,
) -> bytes:
    """``metadata.json``: what review knows of the recording and of this export."""
    fields = {k: _jsonable(v) for k, v in asdict(recording).items()
              if k not in ("bucket", "object_key", "object_version_id", "standing_holds")}
    document = {
        "format": FORMAT,
        "recording": fields,
        "storage": {"bucket": recording.bucket, "object_key": recording.object_key,
                    "object_version_id": recording.object_version_id},
        "holds": [{k: _jsonable(v) for k, v in hold.items()} for hold in holds],
        "judicial_confirmation": ({k: _jsonable(v) for k, v in confirmation.items()}
                                  if confirmation is not None else None),
        "export": {
            **{k: _jsonable(v) for k, v in asdict(export).items()},
            "media": media_path(recording),
            # The chain as the catalogue held it when the export began; this export's own
            # entry follows in the chain (R7).
            "audit_trail": {"entries": trail.entries, "first_seq": trail.first_seq,
                            "last_seq": trail.last_seq},
        },
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


class _Sink:
    """What the zip is written into: no ``seek``/``tell`` (so ``zipfile`` writes data
    descriptors), and the bytes wait here until the stream takes them."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.discarding = False

    def write(self, data: bytes, /) -> int:
        if not self.discarding:
            self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _member(path: str, stamp: datetime) -> zipfile.ZipInfo:
    at = stamp.astimezone(UTC)  # zip times have no zone: UTC, as every time in the package
    info = zipfile.ZipInfo(path, date_time=(at.year, at.month, at.day, at.hour, at.minute,
                                            at.second))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16  # rw-r--r--: readable after unzip
    return info


async def stream(
    recording: Recording, *, metadata_json: bytes, trail: AuditTrail,
    media: AsyncGenerator[bytes, None], stamp: datetime,
) -> AsyncIterator[bytes]:
    """The package, piece by piece; ``media`` is the stored object, already opened. Closes
    ``media`` and ``trail`` however it ends (done, the client gone, the bytes wrong)."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED)
    writer = None
    sums: list[tuple[str, str]] = []
    done = False
    try:
        archive.writestr(_member(METADATA, stamp), metadata_json)
        sums.append((hashlib.sha256(metadata_json).hexdigest(), METADATA))
        if data := sink.take():
            yield data

        with archive.open(_member(TRAIL, stamp), "w") as out:
            for piece in trail.pieces():
                out.write(piece)
                if data := sink.take():
                    yield data
        sums.append((trail.sha256, TRAIL))

        path = media_path(recording)
        writer = archive.open(_member(path, stamp), "w", force_zip64=True)
        digest, size, held = hashlib.sha256(), 0, b""
        async for chunk in media:
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
            # One piece is held back until the hash is known: a mismatch leaves the media
            # member short as well as the zip without its directory.
            if held:
                yield held
            held = sink.take()
        if digest.hexdigest() != recording.sha256.lower() or size != recording.size_bytes:
            INTEGRITY_FAILURES.inc()
            log.error("evidence export stopped: the stored bytes are not the recorded ones",
                      extra={"recording_id": str(recording.id),
                             "expected_sha256": recording.sha256,
                             "found_sha256": digest.hexdigest(),
                             "expected_size": recording.size_bytes, "found_size": size,
                             "object_version_id": recording.object_version_id})
            raise IntegrityError(f"recording {recording.id}: stored bytes do not match the "
                                 "recorded SHA-256 or size")
        writer.close()
        writer = None
        sums.append((digest.hexdigest(), path))
        yield held + sink.take()

        archive.writestr(_member(SUMS, stamp),
                         "".join(f"{digest_hex}  {name}\n" for digest_hex, name in sums))
        archive.close()
        done = True
        if data := sink.take():
            yield data
    finally:
        if not done:
            # Whatever the zip would still write (a data descriptor, the directory) goes
            # nowhere: a package stopped half-way must not look complete.
            sink.discarding = True
            with suppress(Exception):
                if writer is not None:
                    writer.close()
                archive.close()
        trail.close()
        await media.aclose()
