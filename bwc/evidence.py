"""The evidence package's format and its offline check (R6, R7, R8).

Shared by the review service, which writes packages (``services/review/evidence_package.py``),
and ``bwc export verify``, which checks one with nothing else at hand — no database, no
network — so both apply one definition; docs/review.md states it for an outside party:

- ``metadata.json``: ``format`` = ``bwc-evidence-package/1``; ``recording`` (with ``id``,
  ``sha256``, ``size_bytes``), ``holds``, ``judicial_confirmation``, ``storage`` and
  ``export`` (with ``media``: the media member's path);
- ``audit-trail.jsonl``: the recording's entries of the audit hash chain in chain order, one
  ``audit_chain.entry_line`` each (``seq``, ``prev_hash``, ``hash``, ``canonical``). They are
  not consecutive in the chain (other recordings' entries lie between), so each entry's hash
  is checked, and its link wherever the previous seq is in the file too; the full chain is
  ``bwc audit export``'s to check;
- ``media/<id><ext>``: the stored bytes;
- ``SHA256SUMS``, last: ``<hex>  <path>`` for every other member (``sha256sum -c``).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from bwc.audit_chain import ExportFormatError, link_hash, parse_entry_lines

FORMAT = "bwc-evidence-package/1"
METADATA = "metadata.json"
TRAIL = "audit-trail.jsonl"
SUMS = "SHA256SUMS"
MEDIA_DIR = "media/"

_SUM_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")
_PIECE = 1024 * 1024


@dataclass
class Verification:
    """What a check found: ``problems`` is empty when the package holds."""

    problems: list[str] = field(default_factory=list)
    members: int = 0
    trail_entries: int = 0
    recording_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    """SHA-256 and size of a member, read in pieces (a recording may be tens of GiB)."""
    digest, size = hashlib.sha256(), 0
    with archive.open(name) as member:
        while piece := member.read(_PIECE):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


def _sums(archive: zipfile.ZipFile, found: Verification) -> dict[str, str]:
    listed: dict[str, str] = {}
    text = archive.read(SUMS).decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            found.problems.append(f"{SUMS} line {number} is not '<sha256 hex>  <path>'")
        elif match[2] in listed:
            found.problems.append(f"{SUMS} lists {match[2]} twice")
        else:
            listed[match[2]] = match[1]
    return listed


def _check_trail(archive: zipfile.ZipFile, found: Verification, recording_id: str | None) -> None:
    lines = archive.read(TRAIL).decode("utf-8", errors="replace").splitlines()
    previous: tuple[int, bytes] | None = None
    try:
        for seq, prev_hash, digest, body in parse_entry_lines(lines, first_line_number=1):
            found.trail_entries += 1
            if link_hash(prev_hash, body) != digest:
                found.problems.append(f"{TRAIL}: entry seq {seq}: hash is not "
                                      "SHA-256(prev_hash ‖ canonical)")
            if previous is not None and seq <= previous[0]:
                found.problems.append(f"{TRAIL}: entry seq {seq} is not after seq "
                                      f"{previous[0]}")
            elif previous is not None and seq == previous[0] + 1 and prev_hash != previous[1]:
                found.problems.append(f"{TRAIL}: entry seq {seq} does not link to seq "
                                      f"{previous[0]}")
            event = json.loads(body)
            about = (event.get("data") or {}).get("recording_id")
            if recording_id is not None and about != recording_id:
                found.problems.append(f"{TRAIL}: entry seq {seq} is about recording {about}, "
                                      f"not {recording_id}")
            previous = (seq, digest)
    except (ExportFormatError, ValueError, AttributeError) as exc:
        found.problems.append(f"{TRAIL}: {exc}")


def _metadata(archive: zipfile.ZipFile, found: Verification) -> dict[str, Any] | None:
    try:
        document = json.loads(archive.read(METADATA))
        if document.get("format") != FORMAT:
            found.problems.append(f"{METADATA}: format is not {FORMAT!r}")
        recording = document["recording"]
        found.recording_id = str(recording["id"])
        checked = {"sha256": str(recording["sha256"]), "size_bytes": int(recording["size_bytes"]),
                   "media": str(document["export"]["media"])}
        return checked
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        found.problems.append(f"{METADATA} is not a package's metadata: {exc!r}")
        return None


def verify(archive: zipfile.ZipFile) -> Verification:
    """Check every ``SHA256SUMS`` line against its member, that every member is listed, that
    the package holds exactly its four members, each once, that the media is the recording
    ``metadata.json`` describes, and the audit trail's hashes. Raises ``zipfile.BadZipFile``
    for a member whose stored CRC does not match (bytes changed behind the zip's back); the
    caller reports it."""
    found = Verification()
    names = [n for n in archive.namelist() if not n.endswith("/")]
    found.members = len(names)
    # A name twice: a tool that opens the first copy shows other bytes than the ones checked.
    found.problems += [f"{name} is in the package {names.count(name)} times"
                       for name in sorted(set(names)) if names.count(name) > 1]
    for required in (METADATA, TRAIL, SUMS):
        if required not in names:
            found.problems.append(f"{required} is missing")
    listed = _sums(archive, found) if SUMS in names else {}
    actual: dict[str, tuple[str, int]] = {}
    for name in names:
        if name == SUMS:
            continue
        actual[name] = _sha256(archive, name)
        if name not in listed:
            found.problems.append(f"{name} is not listed in {SUMS}")
        elif listed[name] != actual[name][0]:
            found.problems.append(f"{name}: SHA-256 is {actual[name][0]}, {SUMS} says "
                                  f"{listed[name]}")
    found.problems += [f"{name} is listed in {SUMS} but not in the package"
                       for name in listed if name not in actual]
    meta = _metadata(archive, found) if METADATA in names else None
    if meta is not None:
        # Exactly the four members: a forged "second angle", listed in SHA256SUMS as well,
        # must not pass as part of the evidence.
        expected = {METADATA, TRAIL, SUMS, meta["media"]}
        found.problems += [f"{name} does not belong in a package" for name in
                           sorted(set(names) - expected)]
        media = actual.get(meta["media"])
        if not meta["media"].startswith(f"{MEDIA_DIR}{found.recording_id}"):
            found.problems.append(f"the media {meta['media']} named in {METADATA} is not "
                                  f"{MEDIA_DIR}<recording id>")
        elif media is None:
            found.problems.append(f"the media {meta['media']} named in {METADATA} is missing")
        elif media != (meta["sha256"], meta["size_bytes"]):
            found.problems.append(f"{meta['media']}: SHA-256 {media[0]} ({media[1]} bytes) is "
                                  f"not the recording's {meta['sha256']} ({meta['size_bytes']} "
                                  f"bytes) in {METADATA}")
    if TRAIL in names:
        _check_trail(archive, found, found.recording_id)
    return found
