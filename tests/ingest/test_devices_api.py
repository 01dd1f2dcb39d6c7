"""Device registry: admins only (DESIGN §4)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import auth, mint


def _devices(stack: Stack) -> str:
    return f"{stack.url('ingest')}/api/v1/devices"


async def test_admin_registers_lists_and_disables_devices(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    admin = auth(mint(stack, "admin", "admin-a"))
    ids = [f"cam-reg-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    for device_id in ids:
        response = await http.post(_devices(stack), json={"device_id": device_id}, headers=admin)
        assert response.status_code == 201, response.text
        assert response.json()["registered_by"] == "admin-a"
        assert response.json()["enabled"] is True

    duplicate = await http.post(_devices(stack), json={"device_id": ids[0]}, headers=admin)
    assert duplicate.status_code == 409

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await http.get(_devices(stack), params=params, headers=admin)).json()
        seen += [d["device_id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(ids) <= set(seen)
    assert len(seen) == len(set(seen))  # keyset pages never repeat

    response = await http.patch(f"{_devices(stack)}/{ids[1]}", json={"enabled": False},
                                headers=admin)
    assert response.json()["enabled"] is False


@pytest.mark.parametrize("body", [{"device_id": ""}, {"device_id": "has space"}, {}, {
    "device_id": "x" * 65}])
async def test_invalid_device_is_400_naming_the_field(
    stack: Stack, http: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await http.post(_devices(stack), json=body,
                               headers=auth(mint(stack, "admin", "admin-a")))
    assert response.status_code == 400
    assert "device_id" in response.json()["detail"]


@pytest.mark.parametrize("role", ["device", "officer", "reviewer", "supervisor", "auditor"])
async def test_other_roles_cannot_manage_devices(
    stack: Stack, http: httpx.AsyncClient, role: str
) -> None:
    headers = auth(mint(stack, role, "someone"))
    assert (await http.get(_devices(stack), headers=headers)).status_code == 403
    response = await http.post(_devices(stack), json={"device_id": "cam-x"}, headers=headers)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
