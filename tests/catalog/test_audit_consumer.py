"""The catalogue chains every ``audit.recorded`` event from ``audit.v1`` (R7): once each, even
when redelivered, in one order even with two catalogue replicas consuming three partitions."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from bwc.events import AuditAction
from tests.fixtures.audit import send_audit, wait_for_audit
from tests.fixtures.clients import auth, mint
from tests.fixtures.events import audit_event
from tests.fixtures.services import extra_service


async def _verify(http: httpx.AsyncClient, stack: Stack) -> dict[str, object]:
    response = await http.get(f"{stack.url('catalog')}/api/v1/audit/verify",
                              headers=auth(mint(stack, "auditor", "audrey")))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_audit_events_are_chained_with_the_event_as_sent(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    actor = f"rita-{uuid.uuid4().hex[:6]}"
    recording_id = uuid.uuid4()
    events = [audit_event(AuditAction.VIEW_MEDIA, recording_id=recording_id, actor=actor,
                          purpose="Sichtung", details={"range": "bytes=0-99"}),
              audit_event(AuditAction.EXPORT, recording_id=recording_id, actor=actor)]
    await send_audit(stack, events, key=str(recording_id).encode())
    items = await wait_for_audit(http, stack, count=2, actor=actor)
    assert [i["event_id"] for i in items] == [e.id for e in events]  # one partition: in order
    first = items[0]
    assert first["event"]["data"]["details"] == {"range": "bytes=0-99"}
    assert first["event"]["type"] == "audit.recorded"
    assert first["action"] == "view_media" and first["recording_id"] == str(recording_id)
    assert items[1]["seq"] > first["seq"]
    assert (await _verify(http, stack))["ok"] is True


async def test_a_redelivered_event_is_chained_once(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    actor = f"rita-{uuid.uuid4().hex[:6]}"
    event, marker = audit_event(actor=actor), audit_event(actor=actor)
    await send_audit(stack, [event], repeat=3, key=b"same")
    await send_audit(stack, [marker], key=b"same")  # behind the duplicates, same partition
    await wait_for_audit(http, stack, count=2, actor=actor)
    assert await db.fetchval("SELECT count(*) FROM catalog.audit_chain WHERE event_id = $1",
                             event.id) == 1
    assert await db.fetchval("SELECT count(*) FROM catalog.processed_events WHERE event_id = $1",
                             event.id) == 1


async def _appended(http: httpx.AsyncClient, base_url: str) -> float:
    """The replica's ``bwc_audit_chain_appended_total``."""
    text = (await http.get(f"{base_url}/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("bwc_audit_chain_appended_total "))


async def test_two_replicas_and_three_partitions_make_one_chain(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A second catalogue on the same database joins the audit consumer group: the partitions
    are shared out, both replicas append at the same time, and the head lock still gives every
    entry its own seq, one after the other (R7)."""
    actor = f"burst-{uuid.uuid4().hex[:6]}"
    before = await _appended(http, stack.url("catalog"))
    sent = 0
    async with extra_service(stack, "catalog") as replica:
        deadline = asyncio.get_running_loop().time() + 60
        # Until the group has rebalanced onto both replicas and each has appended some.
        while await _appended(http, replica.url) == 0 or \
                await _appended(http, stack.url("catalog")) == before:
            assert asyncio.get_running_loop().time() < deadline, "one replica never appended"
            events = [audit_event(actor=actor, recording_id=uuid.uuid4()) for _ in range(100)]
            await send_audit(stack, events)  # keyed by event id: all three partitions
            sent += len(events)
            await wait_for_audit(http, stack, count=sent, actor=actor)
    seqs = [r["seq"] for r in await db.fetch(
        "SELECT seq FROM catalog.audit_chain WHERE actor = $1 ORDER BY seq", actor)]
    assert len(seqs) == len(set(seqs)) == sent
    verdict = await _verify(http, stack)
    assert verdict["ok"] is True, verdict
