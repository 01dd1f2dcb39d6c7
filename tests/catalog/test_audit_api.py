"""The audit API (R7): auditors only; filters, keyset pages and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bwc.auth import Role
from bwc.devstack.stack import Stack
from bwc.events import AuditAction
from tests.fixtures.audit import send_audit, wait_for_audit
from tests.fixtures.clients import auth, mint, urlsafe_b64
from tests.fixtures.events import audit_event

PATHS = ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/head"]


@pytest.mark.parametrize("path", PATHS)
async def test_only_auditors_read_the_audit_log(
    stack: Stack, http: httpx.AsyncClient, path: str
) -> None:
    url = f"{stack.url('catalog')}{path}"
    assert (await http.get(url)).status_code == 401
    for role in Role:
        response = await http.get(url, headers=auth(mint(stack, role.value, f"{role}-1")))
        expected = 200 if role is Role.AUDITOR else 403
        assert response.status_code == expected, (role, response.text)


async def test_filters_and_keyset_pages(stack: Stack, http: httpx.AsyncClient) -> None:
    actor, other = f"rita-{uuid.uuid4().hex[:6]}", f"sam-{uuid.uuid4().hex[:6]}"
    recording = uuid.uuid4()
    long_ago = datetime.now(UTC) - timedelta(days=30)
    events = [
        audit_event(AuditAction.VIEW_METADATA, recording_id=recording, actor=actor),
        audit_event(AuditAction.VIEW_MEDIA, recording_id=recording, actor=actor),
        audit_event(AuditAction.EXPORT, recording_id=uuid.uuid4(), actor=actor,
                    occurred_at=long_ago),
        audit_event(AuditAction.VIEW_MEDIA, recording_id=recording, actor=other),
        audit_event(AuditAction.DEVICE_REGISTERED, actor=actor, details={"device_id": "cam-1"}),
    ]
    await send_audit(stack, events, key=b"filters")
    await wait_for_audit(http, stack, count=4, actor=actor)
    await wait_for_audit(http, stack, count=1, actor=other)

    async def ids(**params: str) -> list[str]:
        found, cursor = [], None
        while True:
            response = await http.get(
                f"{stack.url('catalog')}/api/v1/audit",
                params={**params, "limit": "2", **({"cursor": cursor} if cursor else {})},
                headers=auth(mint(stack, "auditor", "audrey")))
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 2
            found += [i["event_id"] for i in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                return found

    e = [ev.id for ev in events]
    assert await ids(actor=actor) == [e[0], e[1], e[2], e[4]]  # chain order, across pages
    assert await ids(recording_id=str(recording)) == [e[0], e[1], e[3]]
    assert await ids(recording_id=str(recording), action="view_media") == [e[1], e[3]]
    assert await ids(actor=actor, to=(long_ago + timedelta(seconds=1)).isoformat()) == [e[2]]
    assert await ids(actor=actor, **{"from": (long_ago + timedelta(days=1)).isoformat()}) == \
        [e[0], e[1], e[4]]


@pytest.mark.parametrize(("params", "field"), [
    ({"action": "peek"}, "action"),
    ({"recording_id": "not-a-uuid"}, "recording_id"),
    ({"from": "yesterday"}, "from"),
    ({"to": "2026-13-01T00:00:00Z"}, "to"),
    ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ({"actor": "two words"}, "actor"),
    ({"limit": "0"}, "limit"),
    ({"cursor": "!!"}, "cursor"),
    ({"cursor": urlsafe_b64(b'["1"]')}, "cursor"),
    ({"cursor": urlsafe_b64(b"[-1]")}, "cursor"),
    ({"cursor": urlsafe_b64(b"{}")}, "cursor"),
])
async def test_bad_filters_are_400_naming_the_parameter(
    stack: Stack, http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get(f"{stack.url('catalog')}/api/v1/audit", params=params,
                              headers=auth(mint(stack, "auditor", "audrey")))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


async def test_head_names_the_newest_entry(stack: Stack, http: httpx.AsyncClient) -> None:
    actor = f"rita-{uuid.uuid4().hex[:6]}"
    await send_audit(stack, [audit_event(actor=actor)])
    [entry] = await wait_for_audit(http, stack, count=1, actor=actor)
    response = await http.get(f"{stack.url('catalog')}/api/v1/audit/head",
                              headers=auth(mint(stack, "auditor", "audrey")))
    head = response.json()
    assert head["seq"] >= entry["seq"] and len(head["hash"]) == 64
    assert head["anchor"] is None  # nothing is two years old here
