"""Every change of the device registry leaves exactly one audit entry in the transaction of
the change; without the entry there is no change (R7)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.audit_outbox import outbox_entries, request_id
from tests.fixtures.clients import auth, mint
from tests.fixtures.services import extra_service


def _devices(base: str) -> str:
    return f"{base}/api/v1/devices"


async def _call(
    http: httpx.AsyncClient, method: str, url: str, body: dict[str, Any], token: str
) -> tuple[httpx.Response, str]:
    rid = request_id()
    response = await http.request(method, url, json=body,
                                  headers={**auth(token), "X-Request-ID": rid})
    return response, rid


async def _entries(db: asyncpg.Connection, rid: str) -> list[dict[str, Any]]:
    return [e["payload"]["data"] | {"key": e["key"]}
            for e in await outbox_entries(db, "ingest", rid)]


async def test_registering_a_device_is_one_device_registered_entry(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    device_id = f"cam-audit-{uuid.uuid4().hex[:6]}"
    admin = mint(stack, "admin", "admin-audit")
    response, rid = await _call(http, "POST", _devices(stack.url("ingest")),
                                {"device_id": device_id, "model": "X1", "officer_id": "o-1"},
                                admin)
    assert response.status_code == 201, response.text
    [entry] = await _entries(db, rid)
    assert entry["key"] == f"device:{device_id}"
    assert (entry["actor"], entry["role"], entry["action"]) == (
        "admin-audit", "admin", "device_registered")
    assert entry["recording_id"] is None
    assert entry["request_id"] == rid
    assert entry["source_service"] == "ingest"
    assert entry["details"] == {"device_id": device_id, "model": "X1", "officer_id": "o-1",
                                "enabled": True}

    duplicate, rid = await _call(http, "POST", _devices(stack.url("ingest")),
                                 {"device_id": device_id}, admin)
    assert duplicate.status_code == 409
    assert await _entries(db, rid) == []  # nothing changed, nothing recorded


async def test_changing_a_device_records_the_changed_fields_old_and_new(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    device_id = f"cam-audit-{uuid.uuid4().hex[:6]}"
    admin = mint(stack, "admin", "admin-audit")
    url = _devices(stack.url("ingest"))
    created, _ = await _call(http, "POST", url, {"device_id": device_id, "officer_id": "o-1"},
                             admin)
    assert created.status_code == 201, created.text

    response, rid = await _call(http, "PATCH", f"{url}/{device_id}",
                                {"officer_id": "o-2", "enabled": False, "model": None}, admin)
    assert response.status_code == 200, response.text
    [entry] = await _entries(db, rid)
    assert entry["key"] == f"device:{device_id}"
    assert (entry["actor"], entry["role"], entry["action"]) == (
        "admin-audit", "admin", "device_changed")
    assert entry["details"] == {"device_id": device_id, "changes": {
        "officer_id": {"old": "o-1", "new": "o-2"}, "enabled": {"old": True, "new": False}}}

    # The same values again: still the admin's act on the registry, with nothing changed.
    response, rid = await _call(http, "PATCH", f"{url}/{device_id}", {"enabled": False}, admin)
    assert response.status_code == 200
    [entry] = await _entries(db, rid)
    assert entry["details"] == {"device_id": device_id, "changes": {}}

    missing, rid = await _call(http, "PATCH", f"{url}/cam-nobody-{uuid.uuid4().hex[:6]}",
                               {"enabled": False}, admin)
    assert missing.status_code == 404
    assert await _entries(db, rid) == []


async def test_no_registry_change_without_its_audit_entry(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """R7: with the outbox renamed away the registration and the change are refused with 503
    and the registry stays as it was."""
    async with extra_service(stack, "ingest", own_database=True) as ingest:
        db = await asyncpg.connect(ingest.env["BWC_DATABASE_URL"])
        try:
            admin = mint(stack, "admin", "admin-audit")
            url = _devices(ingest.url)
            created, _ = await _call(http, "POST", url, {"device_id": "cam-kept"}, admin)
            assert created.status_code == 201, created.text

            await db.execute("ALTER TABLE ingest.outbox RENAME TO outbox_away")
            refused, _ = await _call(http, "POST", url, {"device_id": "cam-new"}, admin)
            assert refused.status_code == 503, refused.text
            assert "audit" in refused.json()["detail"]
            refused, _ = await _call(http, "PATCH", f"{url}/cam-kept", {"enabled": False}, admin)
            assert refused.status_code == 503, refused.text
            await db.execute("ALTER TABLE ingest.outbox_away RENAME TO outbox")

            rows = {r["device_id"]: r["enabled"]
                    for r in await db.fetch("SELECT device_id, enabled FROM ingest.devices")}
            assert rows == {"cam-kept": True}
        finally:
            await db.close()
