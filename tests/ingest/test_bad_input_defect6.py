"""Issue 5, defect 6: bad input to ingest gets a 4xx problem naming it, never a 500.

Each case below was a 500 (or a wrong answer) found by schema-driven fuzzing or by hand-made tus
requests. R1 fields (``trigger_reason``) and the device registry reach Postgres, which refuses
NUL; integers and timestamps overflowed in Python before reaching it.
"""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    TUS,
    Device,
    auth,
    create_upload,
    encode_metadata,
    mint,
    new_upload,
    patch_headers,
    recording_metadata,
)

LOW = "0001-01-01T00:00:00+14:00"  # before year 1 in UTC
HIGH = "9999-12-31T23:59:59-12:00"  # after year 9999 in UTC


def _devices(stack: Stack) -> str:
    return f"{stack.url('ingest')}/api/v1/devices"


def _assert_problem(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"], response.json()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"trigger_reason": "knife\x00attack"}, "trigger_reason"),
    ({"officer_id": "officer\x007"}, "officer_id"),
    ({"recorded_at": LOW}, "recorded_at"),
    ({"recorded_at": HIGH}, "recorded_at"),
    ({"ended_at": LOW}, "ended_at"),
    ({"ended_at": HIGH}, "ended_at"),
    ({"content_type": "video/mp4\n"}, "content_type"),
    ({"filename": "evil\u202egnp.exe"}, "filename"),
    ({"filename": "clip\x1b[31m.mp4"}, "filename"),
    ({"trigger_reason": "reads\u2066 backwards"}, "trigger_reason"),
])
async def test_defect6_bad_metadata_value_is_400_naming_the_key(
    stack: Stack, http: httpx.AsyncClient, device: Device, overrides: dict[str, str], field: str
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id, **overrides), 10)
    _assert_problem(response, 400, f"'{field}'")
    assert response.json()["field"] == field


@pytest.mark.parametrize(("value", "needle"), [
    ("9" * 5000, "at most"),  # longer than Python's int-string limit
    ("99999999999999999999", "at most"),  # beyond bigint
])
async def test_defect6_oversized_upload_length_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device, value: str, needle: str
) -> None:
    response = await http.post(f"{stack.url('ingest')}/files/", headers={
        **auth(device.token), **TUS, "Upload-Length": value,
        "Upload-Metadata": encode_metadata(recording_metadata(device.device_id))})
    _assert_problem(response, 400, f"Upload-Length must be {needle}")


@pytest.mark.parametrize("value", ["9" * 5000, "99999999999999999999"])
async def test_defect6_oversized_upload_offset_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device, value: str
) -> None:
    url = await new_upload(http, stack, device, 10)
    response = await http.patch(url, content=b"x", headers={
        **patch_headers(device.token, 0), "Upload-Offset": value})
    _assert_problem(response, 400, "Upload-Offset must be at most")


async def test_defect6_non_ascii_metadata_value_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """Found by the tus fuzz (``test_tus_fuzz.py``): base64 cannot hold "ä"; it was a 500."""
    header = encode_metadata(recording_metadata(device.device_id)) + ",location 51,7ä"
    response = await http.post(f"{stack.url('ingest')}/files/", headers={
        **auth(device.token), **TUS, "Upload-Length": "10",
        "Upload-Metadata": header.encode()})  # type: ignore[dict-item]
    _assert_problem(response, 400, "'location': value is not base64")


async def test_defect6_huge_metadata_with_unknown_keys_is_400(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """The issue's 66 KB header is refused by the HTTP server itself (h11 allows 16 KB of
    headers); below that, the service's own bounds answer."""
    meta = recording_metadata(device.device_id)
    meta.update({f"junk{i}": "x" * 30 for i in range(250)})  # about 12 KB
    response = await create_upload(http, stack, device.token, meta, 10)
    _assert_problem(response, 400, "Upload-Metadata is longer than")
    meta = recording_metadata(device.device_id)
    meta.update({f"k{i}": "x" for i in range(40)})
    response = await create_upload(http, stack, device.token, meta, 10)
    _assert_problem(response, 400, "more than 32 keys")
    meta = recording_metadata(device.device_id)
    meta.update({f"junk{i}": "x" * 30 for i in range(1400)})  # the 66 KB
    response = await create_upload(http, stack, device.token, meta, 10)
    assert response.status_code in (400, 431), response.text


async def test_defect6_unknown_metadata_keys_are_not_stored(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """A client's own keys (Uppy sends ``name`` and ``type``) do not fail the upload; they are
    dropped, so nothing we do not understand is kept (R5)."""
    url = await new_upload(http, stack, device, 10, name="clip.mp4", type="video/mp4")
    head = await http.head(url, headers={**auth(device.token), **TUS})
    assert head.status_code == 200
    keys = {pair.split(" ")[0] for pair in head.headers["Upload-Metadata"].split(",")}
    assert "trigger_reason" in keys
    assert not keys & {"name", "type"}
    decoded = dict(pair.split(" ") for pair in head.headers["Upload-Metadata"].split(","))
    assert base64.b64decode(decoded["device_id"]).decode() == device.device_id


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/a%00b", None),
    ("PATCH", "/a%00b", {"enabled": False}),
    ("GET", "?cursor=%00", None),
    ("POST", "", {"device_id": "cam-nul", "model": "x\u0000y"}),
    ("POST", "", {"device_id": "cam-nul", "officer_id": "o\u0000"}),
    ("POST", "", {"device_id": "cam-nl\n"}),
    ("PATCH", "/cam-any", {"model": "x\u0000y"}),
    ("PATCH", "/cam-any", {"officer_id": "o\u0000"}),
])
async def test_defect6_nul_in_device_registry_is_400(
    stack: Stack, http: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    response = await http.request(method, f"{_devices(stack)}{path}", json=body,
                                  headers=auth(mint(stack, "admin", "admin-a")))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_defect6_authentication_comes_before_the_body(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """A stranger learns nothing about what input would be accepted; a wrong role neither."""
    malformed = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    response = await http.post(_devices(stack), **malformed)  # type: ignore[arg-type]
    _assert_problem(response, 401, "Authorization")
    device_token = mint(stack, "device", "cam-x")
    response = await http.post(_devices(stack), content=b"{not json", headers={
        "Content-Type": "application/json", **auth(device_token)})
    _assert_problem(response, 403, "admin")


async def test_defect6_head_with_unregistered_device_is_403(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """docs/security.md: an unregistered device gets 403 on every tus method."""
    token = mint(stack, "device", f"cam-unregistered-{uuid.uuid4().hex[:6]}")
    response = await http.head(f"{stack.url('ingest')}/files/{uuid.uuid4()}",
                               headers={**auth(token), **TUS})
    assert response.status_code == 403


async def test_defect6_405_names_every_allowed_method(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    response = await http.request("PUT", f"{stack.url('ingest')}/files/{uuid.uuid4()}")
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed == {"HEAD", "PATCH", "DELETE", "OPTIONS"}
