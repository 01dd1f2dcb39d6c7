"""``holds[]`` and the deletion record in ``GET /api/v1/recordings`` and ``/{id}``: events
travel through the stack's broker into its catalogue (roles: reviewer, supervisor; officer:
own; tests/catalog/test_recordings_api.py covers the refusals)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from bwc.devstack.stack import Stack
from bwc.events import HoldReason
from tests.fixtures.clients import auth, mint
from tests.fixtures.events import (
    deleted_event,
    hold_placed_event,
    hold_released_event,
    ingested_event,
)
from tests.fixtures.holds import catalog_until, publish


async def test_holds_are_shown_on_the_recording_and_in_the_list(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    rid, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    device = f"cam-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    # The hold is published before the recording: it waits and is applied when it arrives.
    await publish(stack, hold_placed_event(rid, a, placed_at=now - timedelta(minutes=5)),
                   ingested_event(rid, device_id=device),
                   hold_placed_event(rid, b, placed_at=now - timedelta(minutes=4),
                                     reason=HoldReason.DATA_SUBJECT_REQUEST),
                   hold_released_event(rid, a, released_at=now - timedelta(minutes=1)))
    for _ in range(100):
        body = await catalog_until(http, stack, rid, "held", timeout=30)
        if body["holds"] and body["holds"][0]["released_at"]:
            break
        await asyncio.sleep(0.3)
    assert [(h["id"], h["reason"], h["placed_by"], h["released_by"]) for h in body["holds"]] == [
        (str(a), "owi", "rita", "sam"), (str(b), "data_subject_request", "rita", None)]
    assert body["holds"][0]["case_reference"] == "OWi 12/2026"
    listed = (await http.get(f"{stack.url('catalog')}/api/v1/recordings",
                             params={"device_id": device, "status": "held"},
                             headers=auth(mint(stack, "supervisor", "sven")))).json()
    assert [r["holds"] for r in listed["items"]] == [body["holds"]]


async def test_a_deleted_recording_shows_only_what_remains(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """R5: after recording.deleted the API shows the deletion record, no content."""
    rid = uuid.uuid4()
    deleted_at = datetime.now(UTC).replace(microsecond=0)
    await publish(stack, ingested_event(rid, filename="clip.mp4", location="51.2,6.7"),
                   hold_placed_event(rid, placed_at=deleted_at - timedelta(minutes=3)),
                   deleted_event(rid, deleted_at=deleted_at))
    body = await catalog_until(http, stack, rid, "deleted", timeout=30)
    assert {k: body[k] for k in ("filename", "location", "trigger_reason", "content_type")} == {
        "filename": None, "location": None, "trigger_reason": None, "content_type": None}
    assert datetime.fromisoformat(body["deleted_at"]) == deleted_at
    assert body["deletion_reason"] == "deadline"
    assert (body["sha256"], body["size_bytes"], body["device_id"]) == ("a" * 64, 1, "cam-direct")
    [hold] = body["holds"]
    assert (hold["reason"], hold["case_reference"], hold["justification"]) == ("owi", None, None)


async def test_the_purge_of_waiting_events_runs_supervised(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    tasks = (await http.get(f"{stack.url('catalog')}/readyz")).json()["tasks"]
    assert tasks["pending-purge"]["state"] == "running", tasks
