"""Judicial confirmations and the evidence export (issue 7, deliverables 6 and 7; R6, R7, R8):
``POST /api/v1/recordings/{id}/judicial-confirmation`` and
``GET /api/v1/recordings/{id}/export?purpose=``.

Real stack: uploads through tus, the broker, Postgres, moto's S3 endpoint, the catalogue's
audit chain, review over HTTP; the package is checked with the real ``unzip``,
``sha256sum -c`` and ``bwc export verify``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import threading
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bwc.cli.generated import GeneratedRecording
from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.audit import chain_entries
from tests.fixtures.clients import MIB, Device, auth, mint, new_upload, patch_headers
from tests.fixtures.gate import s3_gate
from tests.fixtures.holds import outbox_entries, place_hold
from tests.fixtures.review import uploaded_recording, wait_in_review
from tests.fixtures.services import extra_service

REPO = Path(__file__).resolve().parents[2]
PURPOSE = "Anforderung der Staatsanwaltschaft Köln"
CONFIRMATION = {"reference": "AG Köln 502 Gs 77/26", "court": "Amtsgericht Köln"}
# More than two of the 1 MiB pieces the media streams in, and not a multiple of them.
DATA = os.urandom(2 * MIB + 4321)


def _decided(delta: timedelta = timedelta(hours=-1)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def _confirm(http: httpx.AsyncClient, stack: Stack, rid: uuid.UUID, *,
                   role: str = "supervisor", sub: str = "sven", **body: Any) -> httpx.Response:
    return await http.post(
        f"{stack.url('review')}/api/v1/recordings/{rid}/judicial-confirmation",
        json={**CONFIRMATION, "decided_at": _decided(), **body},
        headers=auth(mint(stack, role, sub)))


def _export_url(base: str, rid: uuid.UUID) -> str:
    return f"{base}/api/v1/recordings/{rid}/export"


async def _export(http: httpx.AsyncClient, stack: Stack, rid: uuid.UUID, *,
                  base_url: str | None = None, role: str = "supervisor",
                  sub: str = "sven") -> httpx.Response:
    return await http.get(_export_url(base_url or stack.url("review"), rid),
                          params={"purpose": PURPOSE}, headers=auth(mint(stack, role, sub)))


async def _export_entries(db: asyncpg.Connection, rid: uuid.UUID) -> list[dict[str, Any]]:
    return [e["data"] for e in await outbox_entries(db, rid, Topic.AUDIT)
            if e["data"]["action"] == "export"]


def _bwc(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``bwc`` command, on this checkout's code."""
    return subprocess.run([str(REPO / ".venv" / "bin" / "bwc"), *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


async def test_export_of_a_home_recording_waits_for_its_judicial_confirmation(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R8: blocked (409, naming the confirmation and where it is recorded) until a supervisor
    records the court's confirmation, once; not for recordings outside a home; a decision
    time must be a real past instant."""
    rid = await uploaded_recording(http, stack, db, b"in the flat " * 1000, in_home="true")
    blocked = await _export(http, stack, rid)
    assert blocked.status_code == 409, blocked.text
    problem = blocked.json()
    assert problem["rule"] == "R8" and "judicial confirmation" in problem["detail"]
    assert f"/api/v1/recordings/{rid}/judicial-confirmation" in problem["detail"]
    # The refused attempt is recorded with its result, like every access to a recording (R7).
    [attempt] = await _export_entries(db, rid)
    assert (attempt["actor"], attempt["purpose"], attempt["details"]) == (
        "sven", PURPOSE, {"result": "confirmation_missing"})

    assert (await _confirm(http, stack, rid, role="reviewer", sub="rita")).status_code == 403
    for decided_at, message in ((_decided(timedelta(days=1)), "future"),
                                ("2026-01-05T10:00:00", "time zone")):
        refused = await _confirm(http, stack, rid, decided_at=decided_at)
        assert refused.status_code == 400, refused.text
        assert "decided_at" in refused.json()["detail"] and message in refused.json()["detail"]
    blank = await _confirm(http, stack, rid, court="  ")
    assert blank.status_code == 400 and "court" in blank.json()["detail"], blank.text

    decided_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    confirmed = await _confirm(http, stack, rid, decided_at=decided_at.isoformat())
    assert confirmed.status_code == 201, confirmed.text
    body = confirmed.json()
    assert (body["recording_id"], body["reference"], body["court"], body["recorded_by"]) == (
        str(rid), CONFIRMATION["reference"], CONFIRMATION["court"], "sven")
    assert datetime.fromisoformat(body["decided_at"]) == decided_at
    again = await _confirm(http, stack, rid, sub="sonja")
    assert again.status_code == 409 and "AG Köln 502 Gs 77/26" in again.json()["detail"]

    outside = await uploaded_recording(http, stack, db, b"on the street " * 1000)
    not_home = await _confirm(http, stack, outside)
    assert not_home.status_code == 409, not_home.text
    assert not_home.json()["rule"] == "R8" and "home" in not_home.json()["detail"]
    assert (await _confirm(http, stack, uuid.uuid4())).status_code == 404

    [entry] = [e["data"] for e in await outbox_entries(db, rid, Topic.AUDIT)
               if e["data"]["action"] == "judicial_confirmation"]
    assert (entry["actor"], entry["role"]) == ("sven", "supervisor")
    assert entry["details"] == {**CONFIRMATION, "decided_at": decided_at.isoformat()}

    exported = await _export(http, stack, rid)
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    assert metadata["judicial_confirmation"]["reference"] == CONFIRMATION["reference"]
    assert metadata["recording"]["in_home"] is True


def _rewrite(source: Path, target: Path, *, media: bytes | None = None,
             sums: bytes | None = None) -> None:
    """A copy of the package with the media or SHA256SUMS replaced (through zipfile, so the
    zip itself is sound and only the content lies)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name.startswith("media/") and media is not None:
                data = media
            if name == "SHA256SUMS" and sums is not None:
                data = sums
            new.writestr(name, data)


async def test_the_package_passes_sha256sum_and_bwc_export_verify(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, tmp_path: Path
) -> None:
    rid = await uploaded_recording(http, stack, db, DATA)
    viewed = await http.get(f"{stack.url('review')}/api/v1/recordings/{rid}/media",
                            params={"purpose": "Sichtung nach Einsatz"},
                            headers={**auth(mint(stack, "reviewer", "rita")),
                                     "Range": "bytes=0-99"})
    assert viewed.status_code == 206, viewed.text
    held = await place_hold(http, stack, rid)
    assert held.status_code == 201, held.text
    await chain_entries(http, stack, rid, {"view_media", "hold_placed"})

    response = await _export(http, stack, rid, role="reviewer", sub="rita")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="recording-{rid}.zip"')
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    package = tmp_path / f"recording-{rid}.zip"
    package.write_bytes(response.content)

    unpacked = tmp_path / "unpacked"
    subprocess.run(["unzip", "-q", str(package), "-d", str(unpacked)], check=True)
    media = f"media/{rid}.mp4"
    with zipfile.ZipFile(package) as archive:
        assert archive.namelist() == ["metadata.json", "audit-trail.jsonl", media, "SHA256SUMS"]
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=unpacked,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == 3
    assert (unpacked / media).read_bytes() == DATA

    metadata = json.loads((unpacked / "metadata.json").read_text())
    recording = metadata["recording"]
    assert metadata["format"] == "bwc-evidence-package/1"
    assert (recording["id"], recording["sha256"], recording["size_bytes"],
            recording["in_home"], recording["content_type"]) == (
        str(rid), hashlib.sha256(DATA).hexdigest(), len(DATA), False, "video/mp4")
    assert recording["trigger_reason"] == "threatening person with a knife"
    assert [(h["id"], h["reason"], h["placed_by"]) for h in metadata["holds"]] == [
        (held.json()["id"], "criminal", "rita")]
    assert metadata["judicial_confirmation"] is None
    export = metadata["export"]
    assert (export["exported_by"], export["role"], export["purpose"], export["media"]) == (
        "rita", "reviewer", PURPOSE, media)
    assert datetime.fromisoformat(export["exported_at"]) <= datetime.now(UTC)
    assert metadata["storage"]["object_version_id"]

    lines = (unpacked / "audit-trail.jsonl").read_text().splitlines()
    events = [json.loads(json.loads(line)["canonical"]) for line in lines]
    assert {e["data"]["action"] for e in events} >= {"view_media", "hold_placed"}
    assert {e["data"]["recording_id"] for e in events} == {str(rid)}
    assert export["audit_trail"]["entries"] == len(lines)

    [entry] = await _export_entries(db, rid)
    assert (entry["actor"], entry["role"], entry["purpose"]) == ("rita", "reviewer", PURPOSE)
    assert entry["details"] == {
        "result": "ok", "object_version_id": metadata["storage"]["object_version_id"],
        "sha256": hashlib.sha256(DATA).hexdigest(), "size_bytes": len(DATA), "format": "zip",
        "audit_trail_entries": len(lines)}

    verified = _bwc("export", "verify", str(package))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    changed = bytearray(DATA)
    changed[len(DATA) // 2] ^= 0xFF
    _rewrite(package, tmp_path / "media-changed.zip", media=bytes(changed))
    tampered = _bwc("export", "verify", str(tmp_path / "media-changed.zip"))
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"{media}: SHA-256" in tampered.stderr
    sums = (unpacked / "SHA256SUMS").read_text().replace(
        hashlib.sha256(DATA).hexdigest(), hashlib.sha256(bytes(changed)).hexdigest())
    _rewrite(package, tmp_path / "sums-changed.zip", sums=sums.encode())
    lied = _bwc("export", "verify", str(tmp_path / "sums-changed.zip"))
    assert lied.returncode == 1, lied.stdout + lied.stderr
    assert "SHA256SUMS says" in lied.stderr


async def test_the_entry_is_committed_before_the_first_byte(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R7: the export is recorded before any of the package leaves, not after it."""
    rid = await uploaded_recording(http, stack, db, os.urandom(3 * MIB))
    async with http.stream("GET", _export_url(stack.url("review"), rid),
                           params={"purpose": PURPOSE},
                           headers=auth(mint(stack, "supervisor", "sven"))) as response:
        assert response.status_code == 200
        assert await anext(response.aiter_raw())
        [entry] = await _export_entries(db, rid)
        assert entry["details"]["result"] == "ok"


async def test_refusals_are_404_410_and_need_a_purpose(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = await uploaded_recording(http, stack, db, b"x" * 5000)
    missing = await http.get(_export_url(stack.url("review"), rid),
                             params={"purpose": "  "},
                             headers=auth(mint(stack, "reviewer", "rita")))
    assert missing.status_code == 400 and "purpose" in missing.json()["detail"], missing.text
    stranger = uuid.uuid4()
    assert (await _export(http, stack, stranger)).status_code == 404
    await db.execute("UPDATE review.recordings SET delete_after = now() - interval '1 minute'"
                     " WHERE id = $1", rid)
    due = await _export(http, stack, rid)
    assert due.status_code == 410 and "R2" in due.json()["detail"], due.text
    assert [e["details"] for e in await _export_entries(db, rid)] == [{"result": "expired"}]
    [unknown] = [e["data"] for e in await outbox_entries(db, stranger, Topic.AUDIT)]
    assert (unknown["action"], unknown["details"]) == ("export", {"result": "unknown"})


async def test_bytes_that_are_not_the_recorded_ones_break_the_download(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R6: the media is hashed as it passes; bytes other than the recorded ones stop the
    stream before SHA256SUMS and the zip's directory — never a package whose sums lie —, and
    the failure is counted. (The recorded hash is changed here; the stored bytes cannot be.)"""
    data = os.urandom(3 * MIB + 17)
    rid = await uploaded_recording(http, stack, db, data)
    await db.execute("UPDATE review.recordings SET sha256 = $2 WHERE id = $1", rid, "0" * 64)
    received = b""
    with pytest.raises(httpx.HTTPError):
        async with http.stream("GET", _export_url(stack.url("review"), rid),
                               params={"purpose": PURPOSE},
                               headers=auth(mint(stack, "supervisor", "sven"))) as response:
            assert response.status_code == 200
            async for piece in response.aiter_raw():
                received += piece
    assert b"SHA256SUMS" not in received
    # The media's last piece is held back until the hash is known: the member is short too.
    assert data[:MIB] in received and data not in received
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(received))
    metrics = (await http.get(f"{stack.url('review')}/metrics")).text
    assert any(line.startswith("bwc_export_integrity_failures_total ")
               and float(line.split()[1]) >= 1 for line in metrics.splitlines()), metrics


async def test_catalogue_unreachable_is_503_and_no_export_is_recorded(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = await uploaded_recording(http, stack, db, b"y" * 5000)
    closed = f"http://127.0.0.1:{free_port()}"
    async with extra_service(stack, "review", env={"BWC_REVIEW_CATALOG_URL": closed}) as review:
        refused = await _export(http, stack, rid, base_url=review.url)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"]
        assert refused.json()["title"] == "Catalogue unavailable"
        assert "no export was recorded" in refused.json()["detail"]
    assert await _export_entries(db, rid) == []
    served = await _export(http, stack, rid)
    assert served.status_code == 200, served.text
    assert len(await _export_entries(db, rid)) == 1


async def test_object_storage_unreachable_is_503_and_no_export_is_recorded(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The stored object is opened before the export entry is written and the answer starts:
    S3 away is a 503 with Retry-After, not a 200 with a broken body, and not an export."""
    rid = await uploaded_recording(http, stack, db, b"z" * 5000)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_service(stack, "review", env={"BWC_S3_ENDPOINT": gate.url}) as review:
            gate.open = False
            gate.close_all()
            refused = await _export(http, stack, rid, base_url=review.url)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"]
            assert refused.json()["title"] == "Object storage unavailable"
            assert await _export_entries(db, rid) == []
            gate.open = True
            served = await _export(http, stack, rid, base_url=review.url)
            assert served.status_code == 200, served.text
    assert len(await _export_entries(db, rid)) == 1


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def _upload_generated(http: httpx.AsyncClient, stack: Stack, device: Device,
                            recording: GeneratedRecording) -> uuid.UUID:
    """One streamed PATCH of generated bytes: the test never holds the recording."""
    url = await new_upload(http, stack, device, recording.size)

    async def body() -> AsyncIterator[bytes]:
        recording.seek(0)
        while piece := recording.read(MIB):
            yield piece

    patched = await http.patch(url, content=body(), timeout=300, headers={
        **patch_headers(device.token, 0), "Content-Length": str(recording.size)})
    assert patched.status_code == 204, patched.text
    return uuid.UUID(url.rstrip("/").rsplit("/", 1)[-1])


@pytest.mark.timeout(600)
async def test_exporting_200_mib_keeps_the_service_memory_flat(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, device: Device,
    tmp_path: Path,
) -> None:
    """The package streams: a 200 MiB recording goes out of a review process of its own while
    its resident memory is sampled; it grows by far less than 50 MiB (1 MiB pieces; the
    media is never held). The media endpoint, streaming the same recording after it, too."""
    recording = GeneratedRecording(200 * MIB, seed=7)
    rid = await _upload_generated(http, stack, device, recording)
    await wait_in_review(db, rid, timeout=120)
    warm = await uploaded_recording(http, stack, db, os.urandom(3 * MIB))
    async with extra_service(stack, "review") as review:
        pid = review.child.process.pid
        # One small export first: imports and first allocations are not the package's.
        assert (await _export(http, stack, warm, base_url=review.url)).status_code == 200
        before = peak = _rss_mib(pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.01):
                peak = max(peak, _rss_mib(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        package = tmp_path / "big.zip"
        try:
            async with http.stream("GET", _export_url(review.url, rid),
                                   params={"purpose": PURPOSE}, timeout=300,
                                   headers=auth(mint(stack, "supervisor", "sven"))) as response:
                assert response.status_code == 200
                with package.open("wb") as out:
                    async for piece in response.aiter_raw():
                        out.write(piece)
            export_peak = peak
            # The media endpoint streams the same way: the whole 200 MiB through one GET.
            viewed = hashlib.sha256()
            async with http.stream("GET", f"{review.url}/api/v1/recordings/{rid}/media",
                                   params={"purpose": PURPOSE}, timeout=300,
                                   headers=auth(mint(stack, "reviewer", "rita"))) as response:
                assert response.status_code == 200
                async for piece in response.aiter_raw():
                    viewed.update(piece)
        finally:
            stop.set()
            sampler.join()
    growth, media_growth = export_peak - before, peak - before
    print(f"export memory growth: {growth:.1f} MiB "  # noqa: T201 - the figure docs quote
          f"(VmRSS {before:.1f} → peak {export_peak:.1f} MiB, 200 MiB recording); "
          f"with the media GET after it: {media_growth:.1f} MiB")
    assert growth < 50, f"review grew by {growth:.1f} MiB while exporting 200 MiB"
    assert media_growth < 50, f"review grew by {media_growth:.1f} MiB serving 200 MiB media"
    assert viewed.hexdigest() == recording.sha256()
    with zipfile.ZipFile(package) as archive:
        info = archive.getinfo(f"media/{rid}.mp4")
        assert info.file_size == 200 * MIB
        with archive.open(info) as media:
            digest = hashlib.sha256()
            while piece := media.read(MIB):
                digest.update(piece)
    assert digest.hexdigest() == recording.sha256()
