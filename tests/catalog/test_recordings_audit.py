"""Every read of recording metadata leaves exactly one audit entry, committed before the body
is sent; if the entry cannot be written, the metadata is not shown (R7)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from bwc import dev_issuer
from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, RecordingIngestedV1
from services.catalog import repository as repo
from tests.fixtures.audit_outbox import (
    consume_audit_event,
    outbox_entries,
    request_id,
    wait_published,
)
from tests.fixtures.clients import (
    Device,
    auth,
    mint,
    new_upload,
    patch_headers,
    recording_id_of,
    wait_for_recording,
)
from tests.fixtures.events import ingested_event
from tests.fixtures.services import extra_service


@pytest.fixture
async def recording(stack: Stack, http: httpx.AsyncClient, device: Device) -> tuple[Device, str]:
    """One recording of ``device``, in the catalogue."""
    data = os.urandom(1000)
    url = await new_upload(http, stack, device, len(data))
    response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
    assert response.status_code == 204, response.text
    await wait_for_recording(http, stack, recording_id_of(url))
    return device, recording_id_of(url)


def _recordings(stack: Stack) -> str:
    return f"{stack.url('catalog')}/api/v1/recordings"


async def _read(
    http: httpx.AsyncClient, url: str, token: str, **params: str
) -> tuple[httpx.Response, str]:
    """GET ``url`` with a fresh ``X-Request-ID``; returns the response and that id."""
    rid = request_id()
    response = await http.get(url, params=params, headers={**auth(token), "X-Request-ID": rid})
    assert response.headers["X-Request-ID"] == rid
    return response, rid


async def _only_entry(db: asyncpg.Connection, rid: str) -> tuple[str, dict[str, Any]]:
    """The key and data of the one audit entry of request ``rid``."""
    entries = await outbox_entries(db, "catalog", rid)
    assert len(entries) == 1, entries
    return entries[0]["key"], entries[0]["payload"]["data"]


@pytest.mark.parametrize("role", ["reviewer", "supervisor"])
async def test_viewing_metadata_is_one_view_metadata_entry(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str], role: str,
) -> None:
    _, recording_id = recording
    response, rid = await _read(http, f"{_recordings(stack)}/{recording_id}",
                                mint(stack, role, f"{role}-audit"))
    assert response.status_code == 200, response.text
    key, data = await _only_entry(db, rid)
    assert key == recording_id  # the Kafka key: one recording's entries stay in order
    assert data["actor"] == f"{role}-audit"
    assert data["role"] == role
    assert data["action"] == "view_metadata"
    assert data["recording_id"] == recording_id
    assert data["request_id"] == rid
    assert data["source_service"] == "catalog"
    assert data["details"] == {"result": "shown"}


async def test_an_officer_reading_own_metadata_is_audited_too(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str],
) -> None:
    device, recording_id = recording
    response, rid = await _read(http, f"{_recordings(stack)}/{recording_id}",
                                mint(stack, "officer", device.officer_id))
    assert response.status_code == 200, response.text
    _, data = await _only_entry(db, rid)
    assert (data["actor"], data["role"], data["details"]) == (
        device.officer_id, "officer", {"result": "shown"})


async def test_a_role_that_grants_all_recordings_is_the_one_recorded(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str],
) -> None:
    """A supervisor who is also an officer reads another officer's recording as supervisor."""
    _, recording_id = recording
    token = dev_issuer.mint(role=["officer", "supervisor"], sub="sam-both",
                            directory=stack.config.var_dir / "dev-issuer")
    response, rid = await _read(http, f"{_recordings(stack)}/{recording_id}", token)
    assert response.status_code == 200, response.text
    _, data = await _only_entry(db, rid)
    assert (data["actor"], data["role"]) == ("sam-both", "supervisor")


async def test_attempts_on_unknown_and_others_recordings_are_audited_as_such(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str],
) -> None:
    """Both are 404 to the caller (an officer does not learn that another's recording exists);
    the auditor sees which it was."""
    _, recording_id = recording
    other = mint(stack, "officer", "officer-curious")
    response, rid = await _read(http, f"{_recordings(stack)}/{recording_id}", other)
    assert response.status_code == 404
    _, data = await _only_entry(db, rid)
    assert (data["actor"], data["recording_id"], data["details"]) == (
        "officer-curious", recording_id, {"result": "not_own"})

    unknown = str(uuid.uuid4())
    response, rid = await _read(http, f"{_recordings(stack)}/{unknown}", other)
    assert response.status_code == 404
    _, data = await _only_entry(db, rid)
    assert (data["recording_id"], data["details"]) == (unknown, {"result": "unknown"})


async def test_a_search_is_one_entry_with_the_filters_and_the_ids_returned(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str],
) -> None:
    device, recording_id = recording
    response, rid = await _read(http, _recordings(stack), mint(stack, "reviewer", "rita"),
                                device_id=device.device_id, announced="true", limit="10")
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["items"]] == [recording_id]
    key, data = await _only_entry(db, rid)
    assert key == "actor:rita"
    assert data["action"] == "search"
    assert data["recording_id"] is None
    assert data["details"] == {
        "filters": {"device_id": device.device_id, "announced": True}, "limit": 10,
        "cursor": None, "ids": [recording_id]}

    # An officer's list is narrowed to their own recordings; the entry says so.
    response, rid = await _read(http, _recordings(stack),
                                mint(stack, "officer", device.officer_id))
    assert response.status_code == 200
    _, data = await _only_entry(db, rid)
    assert data["role"] == "officer"
    assert data["details"]["filters"] == {"officer_id": device.officer_id}
    assert data["details"]["ids"] == [recording_id]


@pytest.mark.parametrize("role", ["device", "auditor", "admin"])
async def test_refused_roles_leave_no_entry(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str], role: str,
) -> None:
    _, recording_id = recording
    response, rid = await _read(http, f"{_recordings(stack)}/{recording_id}",
                                mint(stack, role, "x"))
    assert response.status_code == 403
    assert await outbox_entries(db, "catalog", rid) == []


async def test_the_catalogue_relay_publishes_the_entry_on_audit_v1(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str],
) -> None:
    _, recording_id = recording
    response, rid = await _read(http, f"{_recordings(stack)}/{recording_id}",
                                mint(stack, "reviewer", "rita"))
    assert response.status_code == 200
    [entry] = await outbox_entries(db, "catalog", rid)
    event_id = entry["payload"]["id"]
    await wait_published(db, "catalog", event_id)
    message = await consume_audit_event(stack.env["BWC_KAFKA_BOOTSTRAP"], event_id)
    assert message.key == recording_id.encode()
    assert ("content-type", b"application/cloudevents+json") in message.headers
    event = CloudEvent.model_validate(json.loads(message.value))
    assert event.type == "audit.recorded"
    assert event.data["request_id"] == rid
    assert event.data["action"] == "view_metadata"


async def test_no_metadata_without_a_trace_when_the_audit_write_fails(
    stack: Stack, http: httpx.AsyncClient,
) -> None:
    """R7: the outbox renamed away (as a broken or tampered database would be) — the reads
    answer 503 and show nothing; with the outbox back, they work again."""
    group = f"bwc-catalog-{uuid.uuid4().hex[:8]}"
    async with extra_service(stack, "catalog", own_database=True,
                             env={"BWC_CATALOG_CONSUMER_GROUP": group}) as catalog:
        db = await asyncpg.connect(catalog.env["BWC_DATABASE_URL"])
        try:
            event = ingested_event(trigger_reason="secret trigger reason")
            data = event.parsed_data()
            assert isinstance(data, RecordingIngestedV1)
            async with db.transaction():
                await repo.insert_ingested(db, data, delete_after=data.delete_after)
            url = f"{catalog.url}/api/v1/recordings"
            token = mint(stack, "reviewer", "rita")
            shown, _ = await _read(http, f"{url}/{event.subject}", token)
            assert shown.status_code == 200, shown.text

            await db.execute("ALTER TABLE catalog.outbox RENAME TO outbox_away")
            for target in (f"{url}/{event.subject}", url):
                refused, _ = await _read(http, target, token)
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
                assert "audit" in refused.json()["detail"]
                assert "Retry-After" in refused.headers
                assert "secret trigger reason" not in refused.text
                assert {"items", "sha256", "trigger_reason"}.isdisjoint(refused.json())

            await db.execute("ALTER TABLE catalog.outbox_away RENAME TO outbox")
            again, rid = await _read(http, f"{url}/{event.subject}", token)
            assert again.status_code == 200, again.text
            assert len(await outbox_entries(db, "catalog", rid)) == 1
        finally:
            await db.close()


async def test_a_locked_outbox_is_503_within_the_lock_timeout(
    stack: Stack, http: httpx.AsyncClient,
) -> None:
    group = f"bwc-catalog-{uuid.uuid4().hex[:8]}"
    async with extra_service(stack, "catalog", own_database=True,
                             env={"BWC_CATALOG_CONSUMER_GROUP": group}) as catalog:
        db = await asyncpg.connect(catalog.env["BWC_DATABASE_URL"])
        try:
            async with db.transaction():
                await db.execute("LOCK TABLE catalog.outbox IN ACCESS EXCLUSIVE MODE")
                # The lock timeout (5 s) ends the wait long before the client's (60 s).
                refused, _ = await _read(http, f"{catalog.url}/api/v1/recordings",
                                         mint(stack, "reviewer", "rita"))
                assert refused.status_code == 503, refused.text
        finally:
            await db.close()



@pytest.mark.parametrize("offered", ["x" * 201, "two words", "é-accented"])
async def test_an_unusable_request_id_is_replaced_not_a_500(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection,
    recording: tuple[Device, str], offered: str,
) -> None:
    """An audit entry holds at most 200 characters of request id; the middleware keeps only
    ids it can log and record, and names the one it used."""
    _, recording_id = recording
    headers = [(k.encode(), v.encode()) for k, v in auth(mint(stack, "reviewer", "rita")).items()]
    headers.append((b"X-Request-ID", offered.encode()))
    response = await http.get(f"{_recordings(stack)}/{recording_id}", headers=headers)
    assert response.status_code == 200, response.text
    used = response.headers["X-Request-ID"]
    assert used != offered
    _, data = await _only_entry(db, used)
    assert data["recording_id"] == recording_id
