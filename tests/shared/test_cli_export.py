"""``bwc export verify ZIP`` (issue 7, deliverable 7) on hand-built packages: a good one holds
with nothing but the file; each kind of tampering — media bytes, a ``SHA256SUMS`` line, a
member added or dropped, metadata that names other bytes, an audit entry altered or about
another recording — exits 1 naming it; a file that is no zip exits 2 (R6, R7, R8)."""

from __future__ import annotations

import hashlib
import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bwc.audit_chain import canonical, entry_line, link_hash
from bwc.cli.main import main as bwc
from bwc.evidence import FORMAT

RID = str(uuid.uuid4())
MEDIA = f"media/{RID}.mp4"
MEDIA_BYTES = bytes(range(256)) * 4099  # a little over 1 MiB: read in more than one piece

Members = dict[str, bytes]


def _trail(recording_id: str = RID) -> bytes:
    """Entries 3, 4 (consecutive: their link is checked) and 9 of a chain."""
    lines, prev = [], bytes(32)
    for seq in (3, 4, 9):
        body = canonical({"id": f"e{seq}", "type": "audit.recorded",
                          "data": {"actor": "rita", "recording_id": recording_id}})
        digest = link_hash(prev, body)
        lines.append(entry_line(seq, prev, digest, body) + "\n")
        prev = digest if seq != 4 else hashlib.sha256(b"seq 8, another recording's").digest()
    return "".join(lines).encode()


def _metadata(**recording: object) -> bytes:
    return json.dumps({
        "format": FORMAT,
        "recording": {"id": RID, "sha256": hashlib.sha256(MEDIA_BYTES).hexdigest(),
                      "size_bytes": len(MEDIA_BYTES), "in_home": True, **recording},
        "holds": [], "judicial_confirmation": None,
        "export": {"media": MEDIA, "purpose": "Anforderung StA"},
    }).encode()


def _members() -> Members:
    return {"metadata.json": _metadata(), "audit-trail.jsonl": _trail(), MEDIA: MEDIA_BYTES}


def _sums(members: Members) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in members.items()).encode()


def _write(path: Path, members: Members, sums: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("SHA256SUMS", _sums(members) if sums is None else sums)
    return path


def test_a_good_package_verifies_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bwc(["export", "verify", str(_write(tmp_path / "p.zip", _members()))]) == 0
    out = capsys.readouterr().out
    assert f"ok: recording {RID}: 4 members" in out and "3 audit entries" in out


def _media_byte_changed(members: Members) -> tuple[Members, bytes | None]:
    changed = bytearray(MEDIA_BYTES)
    changed[1000] ^= 0x01
    return {**members, MEDIA: bytes(changed)}, _sums(members)


def _sums_line_changed(members: Members) -> tuple[Members, bytes | None]:
    sums = _sums(members).decode().replace(hashlib.sha256(MEDIA_BYTES).hexdigest(), "0" * 64)
    return members, sums.encode()


def _media_and_sums_replaced(members: Members) -> tuple[Members, bytes | None]:
    """Other bytes with a SHA256SUMS that matches them: metadata.json still names the
    recorded hash, so the swap shows."""
    other = {**members, MEDIA: MEDIA_BYTES[::-1]}
    return other, _sums(other)


def _member_not_listed(members: Members) -> tuple[Members, bytes | None]:
    return {**members, "media/extra.txt": b"smuggled in"}, _sums(members)


def _member_missing(members: Members) -> tuple[Members, bytes | None]:
    return {k: v for k, v in members.items() if k != "audit-trail.jsonl"}, _sums(members)


def _audit_entry_altered(members: Members) -> tuple[Members, bytes | None]:
    other = {**members, "audit-trail.jsonl": members["audit-trail.jsonl"].replace(
        b'\\"actor\\":\\"rita\\"', b'\\"actor\\":\\"mallory\\"', 1)}
    assert other != members
    return other, _sums(other)


def _audit_link_broken(members: Members) -> tuple[Members, bytes | None]:
    """Entry 4 re-hashed over another prev_hash: it hashes, but no longer links to 3."""
    lines = members["audit-trail.jsonl"].decode().splitlines()
    entry = json.loads(lines[1])
    prev = hashlib.sha256(b"forged").digest()
    lines[1] = entry_line(4, prev, link_hash(prev, entry["canonical"].encode()),
                          entry["canonical"].encode())
    other = {**members, "audit-trail.jsonl": ("\n".join(lines) + "\n").encode()}
    return other, _sums(other)


def _audit_of_another_recording(members: Members) -> tuple[Members, bytes | None]:
    other = {**members, "audit-trail.jsonl": _trail(str(uuid.uuid4()))}
    return other, _sums(other)


def _forged_member_listed(members: Members) -> tuple[Members, bytes | None]:
    """A "second angle" added and listed in SHA256SUMS too: every sum holds, yet it is no
    part of the evidence."""
    other = {**members, f"media/{RID}-second-angle.mp4": b"forged"}
    return other, _sums(other)


def _media_named_for_another_recording(members: Members) -> tuple[Members, bytes | None]:
    other_media = f"media/{uuid.uuid4()}.mp4"
    document = json.loads(members["metadata.json"])
    document["export"]["media"] = other_media
    other = {"metadata.json": json.dumps(document).encode(),
             "audit-trail.jsonl": members["audit-trail.jsonl"], other_media: MEDIA_BYTES}
    return other, _sums(other)


@pytest.mark.parametrize(("tamper", "message"), [
    (_forged_member_listed, f"media/{RID}-second-angle.mp4 does not belong in a package"),
    (_media_named_for_another_recording, "is not media/<recording id>"),
    (_media_byte_changed, f"{MEDIA}: SHA-256 is"),
    (_sums_line_changed, "SHA256SUMS says 0000"),
    (_media_and_sums_replaced, "is not the recording's"),
    (_member_not_listed, "media/extra.txt is not listed in SHA256SUMS"),
    (_member_missing, "audit-trail.jsonl is missing"),
    (_audit_entry_altered, "hash is not SHA-256(prev_hash ‖ canonical)"),
    (_audit_link_broken, "entry seq 4 does not link to seq 3"),
    (_audit_of_another_recording, f"not {RID}"),
])
def test_tampering_is_exit_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    tamper: Callable[[Members], tuple[Members, bytes | None]], message: str,
) -> None:
    members, sums = tamper(_members())
    assert bwc(["export", "verify", str(_write(tmp_path / "p.zip", members, sums))]) == 1
    assert message in capsys.readouterr().err


def test_bytes_changed_behind_the_zips_back_are_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A byte flipped in the file itself (not rewritten through zipfile): the member's CRC
    no longer matches."""
    path = _write(tmp_path / "p.zip", _members())
    raw = bytearray(path.read_bytes())
    at = raw.index(MEDIA_BYTES[:64]) + 5000
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    assert bwc(["export", "verify", str(path)]) == 1
    assert "FAILED" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really", b"hello"])
def test_no_zip_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(content)
    assert bwc(["export", "verify", str(path)]) == 2
    assert "not a readable zip" in capsys.readouterr().err
    assert bwc(["export", "verify", str(tmp_path / "absent.zip")]) == 2


def test_a_member_twice_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The media name twice, forged bytes first and the genuine ones after: a checker reading
    the last copy would pass what an unzip tool opening the first copy shows."""
    members = _members()
    path = tmp_path / "p.zip"
    with pytest.warns(UserWarning, match="Duplicate name"), \
            zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEDIA, b"FORGED")
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("SHA256SUMS", _sums(members))
    assert bwc(["export", "verify", str(path)]) == 1
    assert f"{MEDIA} is in the package 2 times" in capsys.readouterr().err
