"""Bad tus requests get a clear 4xx naming the problem, and leave nothing half-done (R1, R2)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    TUS,
    Device,
    auth,
    create_upload,
    new_upload,
    object_store,
    patch_headers,
    raw_patch,
    recording_metadata,
    upload_offset,
)


def _checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


async def test_wrong_chunk_checksum_is_460_and_offset_stays(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    url = await new_upload(http, stack, device, 2 * MIB)
    chunk = os.urandom(MIB)
    response = await http.patch(url, content=chunk, headers={
        **patch_headers(device.token, 0),
        "Upload-Checksum": _checksum("sha256", b"something else")})
    assert response.status_code == 460
    assert "Upload-Checksum" in response.json()["detail"]
    assert await upload_offset(http, url, device) == 0

    # The same chunk with the right checksum is then accepted.
    response = await http.patch(url, content=chunk, headers={
        **patch_headers(device.token, 0),
        "Upload-Checksum": _checksum("sha256", chunk)})
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(MIB)


async def test_unsupported_checksum_algorithm_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    url = await new_upload(http, stack, device, MIB)
    response = await http.patch(url, content=b"x", headers={
        **patch_headers(device.token, 0),
        "Upload-Checksum": "crc32 AAAA"})
    assert response.status_code == 400
    assert "crc32" in response.json()["detail"]


async def test_wrong_offset_is_409(stack: Stack, http: httpx.AsyncClient, device: Device) -> None:
    url = await new_upload(http, stack, device, MIB)
    response = await http.patch(url, content=b"abc", headers=patch_headers(device.token, 7))
    assert response.status_code == 409
    assert "Upload-Offset is 7" in response.json()["detail"]
    assert await upload_offset(http, url, device) == 0


async def test_body_beyond_upload_length_is_413_and_keeps_nothing(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    url = await new_upload(http, stack, device, 100)
    response = await http.patch(url, content=os.urandom(101),
                                headers=patch_headers(device.token, 0))
    assert response.status_code == 413
    assert await upload_offset(http, url, device) == 0


async def test_missing_tus_version_is_412(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    response = await http.post(f"{stack.url('ingest')}/files/",
                               headers={**auth(device.token), "Upload-Length": "10"})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"trigger_reason": None}, "trigger_reason"),  # R1: the danger must be named
        ({"announced": None}, "announced"),
        ({"announced": "maybe"}, "announced"),
        # R1: skipping the announcement needs imminent danger
        ({"announced": "false", "imminent_danger": "false"}, "imminent_danger"),
        ({"announced": "false", "imminent_danger": None}, "imminent_danger"),
        ({"recorded_at": None}, "recorded_at"),
        ({"recorded_at": "yesterday"}, "recorded_at"),
        ({"recorded_at": "2026-11-24T08:00:00"}, "recorded_at"),  # no time zone
        ({"device_id": None}, "device_id"),
        ({"sha256": "abc"}, "sha256"),
        ({"location": "north"}, "location"),
        ({"ended_at": "2000-01-01T00:00:00Z"}, "ended_at"),
    ],
    ids=lambda v: str(v),
)
async def test_bad_metadata_is_400_naming_the_field(
    stack: Stack, http: httpx.AsyncClient, device: Device, overrides: dict[str, str | None],
    field: str,
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id, **overrides), 10)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["field"] == field
    assert f"'{field}'" in problem["detail"]


async def test_recorded_at_in_the_future_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id, recorded_at=future), 10)
    assert response.status_code == 400
    assert "future" in response.json()["detail"]


async def test_recording_past_its_deadline_is_refused_and_nothing_kept(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    old = (datetime.now(UTC) - timedelta(days=14, minutes=1)).isoformat()
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id, recorded_at=old), 10)
    assert response.status_code == 422
    assert "R2" in response.json()["detail"]
    rows = await db.fetchval("SELECT count(*) FROM ingest.uploads WHERE device_id = $1",
                             device.device_id)
    assert rows == 0


async def test_declared_sha256_mismatch_rejects_and_removes_bytes(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    data = os.urandom(6 * MIB)
    url = await new_upload(http, stack, device, len(data), sha256="0" * 64)
    response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
    assert response.status_code == 422
    assert response.json()["field"] == "sha256"
    assert "SHA-256" in response.json()["detail"]
    recording_id = url.rsplit("/", 1)[-1]
    assert await object_store(stack).stat(f"recordings/{recording_id}") is None
    row = await db.fetchrow("SELECT state, metadata, metadata_header FROM ingest.uploads"
                            " WHERE id = $1::uuid", recording_id)
    assert row["state"] == "rejected"
    assert (row["metadata"], row["metadata_header"]) == ("{}", "")  # nothing of it kept (R5)
    head = await http.head(url, headers={**auth(device.token), **TUS})
    assert head.status_code == 410


async def test_unregistered_device_is_403(stack: Stack, http: httpx.AsyncClient) -> None:
    from tests.fixtures.clients import mint

    token = mint(stack, "device", "cam-unknown")
    response = await create_upload(http, stack, token, recording_metadata("cam-unknown"), 10)
    assert response.status_code == 403
    assert "not registered" in response.json()["detail"]


async def test_disabled_device_is_403(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    from tests.fixtures.clients import mint

    admin = mint(stack, "admin", "admin-test")
    response = await http.patch(f"{stack.url('ingest')}/api/v1/devices/{device.device_id}",
                                json={"enabled": False}, headers=auth(admin))
    assert response.status_code == 200
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id), 10)
    assert response.status_code == 403
    assert "disabled" in response.json()["detail"]


async def test_device_uploads_only_as_itself(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata("cam-someone-else"), 10)
    assert response.status_code == 403
    assert "only as itself" in response.json()["detail"]


@pytest.mark.parametrize("role", ["officer", "reviewer", "supervisor", "auditor", "admin"])
async def test_only_devices_may_upload(
    stack: Stack, http: httpx.AsyncClient, device: Device, role: str
) -> None:
    from tests.fixtures.clients import mint

    token = mint(stack, role, device.device_id)
    response = await create_upload(http, stack, token, recording_metadata(device.device_id), 10)
    assert response.status_code == 403
    assert "device" in response.json()["detail"]


async def test_missing_or_forged_token_is_401(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    meta = recording_metadata(device.device_id)
    response = await http.post(f"{stack.url('ingest')}/files/", headers={
        **TUS, "Upload-Length": "10"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    forged = device.token[:-4] + ("AAAA" if not device.token.endswith("AAAA") else "BBBB")
    response = await create_upload(http, stack, forged, meta, 10)
    assert response.status_code == 401


async def test_another_devices_upload_is_not_found(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    from tests.fixtures.clients import register_device

    url = await new_upload(http, stack, device, 10)
    other = await register_device(stack, http)
    response = await http.head(url, headers={**auth(other.token), **TUS})
    assert response.status_code == 404


async def test_client_disconnect_mid_request_keeps_received_bytes(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """A dock that loses the connection mid-chunk resumes from what arrived (no checksum)."""
    url = await new_upload(http, stack, device, 8 * MIB)
    sent = 6 * MIB + 1000
    raw_patch(url, device.token, send=sent)
    for _ in range(50):
        offset = await upload_offset(http, url, device)
        if offset:
            break
        await asyncio.sleep(0.1)
    assert offset == sent


async def test_termination_removes_the_upload(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    url = await new_upload(http, stack, device, 10 * MIB)
    response = await http.patch(url, content=os.urandom(6 * MIB),
                                headers=patch_headers(device.token, 0))
    assert response.status_code == 204
    response = await http.delete(url, headers={**auth(device.token), **TUS})
    assert response.status_code == 204
    head = await http.head(url, headers={**auth(device.token), **TUS})
    assert head.status_code == 410


async def test_options_advertises_extensions(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.options(f"{stack.url('ingest')}/files/")
    assert response.status_code == 204
    assert set(response.headers["Tus-Extension"].split(",")) >= {
        "creation", "checksum", "termination", "expiration"}
    assert "sha256" in response.headers["Tus-Checksum-Algorithm"].split(",")


@pytest.mark.parametrize(("overrides", "field"), [
    ({"content_type": "text/html"}, "content_type"),
    ({"filename": "../../etc/passwd"}, "filename"),
    ({"filename": "x" * 300}, "filename"),
])
async def test_unsafe_content_type_or_filename_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device, overrides: dict[str, str], field: str
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id, **overrides), 10)
    assert response.status_code == 400
    assert response.json()["field"] == field


async def test_non_ascii_digits_in_upload_length_are_400(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    response = await http.post(f"{stack.url('ingest')}/files/", headers={
        **auth(device.token), **TUS, "Upload-Length": "²".encode("latin-1"),
        "Upload-Metadata": "device_id " + base64.b64encode(device.device_id.encode()).decode()})
    assert response.status_code == 400
    assert "Upload-Length" in response.json()["detail"]


async def test_errors_carry_tus_resumable(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.post(f"{stack.url('ingest')}/files/", headers=TUS)
    assert response.status_code == 401
    assert response.headers["Tus-Resumable"] == "1.0.0"


async def test_disabled_device_cannot_touch_its_open_uploads(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    from tests.fixtures.clients import mint

    url = await new_upload(http, stack, device, 10)
    await http.patch(f"{stack.url('ingest')}/api/v1/devices/{device.device_id}",
                     json={"enabled": False}, headers=auth(mint(stack, "admin", "admin-test")))
    assert (await http.head(url, headers={**auth(device.token), **TUS})).status_code == 403
    assert (await http.delete(url, headers={**auth(device.token), **TUS})).status_code == 403
