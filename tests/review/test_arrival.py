""""A recording that the catalogue shows can be held at once" (issue 7, deliverable 1): review
and the catalogue consume ``recordings.v1`` each at its own pace, so the moment the catalogue
shows a recording, review may not have applied its ``recording.ingested`` yet. A review
process with a view of its own, starting from an empty database and a new consumer group (so
it has the whole topic to catch up on), is asked to hold a recording the instant the catalogue
shows it: the request waits for the recording's arrival instead of answering 404."""

from __future__ import annotations

import uuid

import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import auth, mint, upload_through, wait_for_recording
from tests.fixtures.services import extra_service


async def test_a_recording_the_catalogue_shows_can_be_held_at_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    async with extra_service(stack, "review", own_database=True, env={
        "BWC_REVIEW_CONSUMER_GROUP": f"bwc-review-arrival-{uuid.uuid4().hex[:8]}",
        "BWC_REVIEW_ARRIVAL_WAIT": "30",
    }) as review:
        rid = await upload_through(http, stack, stack.url("ingest"), b"evidence" * 1000)
        await wait_for_recording(http, stack, rid)
        held = await http.post(
            f"{review.url}/api/v1/recordings/{rid}/holds",
            headers=auth(mint(stack, "reviewer", "rita")),
            json={"reason": "owi", "case_reference": "OWi 7/2026",
                  "justification": "blocking the fire lane"}, timeout=60)
        assert held.status_code == 201, held.text
        assert held.json()["recording_id"] == rid
