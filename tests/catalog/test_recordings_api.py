"""Catalogue read API: roles, officers' own-only view, filters and keyset pagination."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    Device,
    auth,
    mint,
    new_upload,
    patch_headers,
    urlsafe_b64,
    wait_for_recording,
)


async def _upload_small(
    http: httpx.AsyncClient, stack: Stack, device: Device, **meta: str | None
) -> str:
    data = os.urandom(1000)
    url = await new_upload(http, stack, device, len(data), **meta)
    response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
    assert response.status_code == 204, response.text
    return url.rsplit("/", 1)[-1]


@pytest.fixture
async def five_recordings(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> tuple[Device, list[str]]:
    base = datetime.now(UTC) - timedelta(hours=5)
    ids = []
    for i in range(5):
        ids.append(await _upload_small(
            http, stack, device, recorded_at=(base + timedelta(minutes=i)).isoformat(),
            in_home="true" if i == 0 else "false",
            announced="false" if i == 1 else "true",
            imminent_danger="true" if i == 1 else "false"))
    await asyncio.gather(*(wait_for_recording(http, stack, r) for r in ids))
    return device, ids


def _list_url(stack: Stack) -> str:
    return f"{stack.url('catalog')}/api/v1/recordings"


async def test_keyset_pagination_walks_newest_first(
    stack: Stack, http: httpx.AsyncClient, five_recordings: tuple[Device, list[str]]
) -> None:
    device, ids = five_recordings
    headers = auth(mint(stack, "reviewer", "rita"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"device_id": device.device_id, "limit": "2",
                  **({"cursor": cursor} if cursor else {})}
        response = await http.get(_list_url(stack), params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_filters(
    stack: Stack, http: httpx.AsyncClient, five_recordings: tuple[Device, list[str]]
) -> None:
    device, ids = five_recordings
    headers = auth(mint(stack, "supervisor", "sven"))

    async def query(**params: str) -> list[str]:
        response = await http.get(_list_url(stack), headers=headers,
                                  params={"device_id": device.device_id, **params})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert await query(in_home="true") == [ids[0]]
    assert await query(announced="false") == [ids[1]]
    assert await query(status="pending_review", officer_id=device.officer_id) == ids[::-1]
    recorded_at = [(await wait_for_recording(http, stack, r))["recorded_at"] for r in ids]
    # recorded_from is inclusive, recorded_to exclusive.
    window = {"recorded_from": recorded_at[1], "recorded_to": recorded_at[3]}
    assert await query(**window) == [ids[2], ids[1]]


async def test_officer_sees_only_own_recordings(
    stack: Stack, http: httpx.AsyncClient, five_recordings: tuple[Device, list[str]]
) -> None:
    device, ids = five_recordings
    own = auth(mint(stack, "officer", device.officer_id))
    other = auth(mint(stack, "officer", "someone-else"))
    response = await http.get(f"{_list_url(stack)}/{ids[0]}", headers=own)
    assert response.status_code == 200
    assert (await http.get(f"{_list_url(stack)}/{ids[0]}", headers=other)).status_code == 404
    listed = (await http.get(_list_url(stack), headers=own)).json()["items"]
    assert {r["officer_id"] for r in listed} == {device.officer_id}
    assert (await http.get(_list_url(stack), headers=other)).json()["items"] == []
    response = await http.get(_list_url(stack), headers=other,
                              params={"officer_id": device.officer_id})
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["device", "auditor", "admin"])
async def test_other_roles_are_refused(
    stack: Stack, http: httpx.AsyncClient, five_recordings: tuple[Device, list[str]], role: str
) -> None:
    _, ids = five_recordings
    headers = auth(mint(stack, role, "x"))
    assert (await http.get(_list_url(stack), headers=headers)).status_code == 403
    assert (await http.get(f"{_list_url(stack)}/{ids[0]}", headers=headers)).status_code == 403


@pytest.mark.parametrize(("params", "needle"), [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"limit": "0"}, "limit"),
    ({"status": "gone"}, "status"),
    ({"recorded_from": "2026-11-24T08:00:00"}, "recorded_from"),
])
async def test_bad_query_is_400_naming_the_parameter(
    stack: Stack, http: httpx.AsyncClient, params: dict[str, str], needle: str
) -> None:
    response = await http.get(_list_url(stack), params=params,
                              headers=auth(mint(stack, "reviewer", "rita")))
    assert response.status_code == 400
    assert needle in response.json()["detail"]


async def test_unknown_recording_is_404(stack: Stack, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{_list_url(stack)}/00000000-0000-4000-8000-000000000000",
                              headers=auth(mint(stack, "reviewer", "rita")))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("rec_id", [5, ["x"], {"a": 1}])
async def test_cursor_with_a_non_string_id_is_400_not_500(
    stack: Stack, http: httpx.AsyncClient, rec_id: object
) -> None:
    cursor = urlsafe_b64(json.dumps(["2026-01-01T00:00:00+00:00", rec_id]).encode())
    response = await http.get(f"{stack.url('catalog')}/api/v1/recordings?cursor={cursor}",
                              headers=auth(mint(stack, "reviewer", "rita")))
    assert response.status_code == 400, response.text
    assert "cursor" in response.json()["detail"]
