"""R7 end to end: every media access, hold change, judicial confirmation and export made through
the review service appears in the catalogue's hash chain with actor, role and purpose, and the
chain verifies (issue 7, "Tests that must exist")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.audit import chain_entries
from tests.fixtures.clients import auth, mint
from tests.fixtures.review import uploaded_recording


async def test_every_access_and_change_is_chained_with_actor_and_purpose(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = await uploaded_recording(http, stack, db, b"in the hallway " * 4096, in_home="true")
    review = stack.url("review")
    rita, sven = auth(mint(stack, "reviewer", "rita")), auth(mint(stack, "supervisor", "sven"))

    media = await http.get(f"{review}/api/v1/recordings/{rid}/media",
                           params={"purpose": "Sichtung nach Einsatz"},
                           headers={**rita, "Range": "bytes=0-99"})
    assert media.status_code == 206, media.text
    held = await http.post(f"{review}/api/v1/recordings/{rid}/holds", headers=rita, json={
        "reason": "criminal", "case_reference": "StA Köln 12 Js 345/26",
        "justification": "threat with a knife in the hallway"})
    assert held.status_code == 201, held.text
    confirmed = await http.post(
        f"{review}/api/v1/recordings/{rid}/judicial-confirmation", headers=sven, json={
            "reference": "AG Köln 502 Gs 77/26", "court": "Amtsgericht Köln",
            "decided_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
    assert confirmed.status_code == 201, confirmed.text
    export = await http.get(f"{review}/api/v1/recordings/{rid}/export",
                            params={"purpose": "Anforderung der Staatsanwaltschaft"},
                            headers=sven)
    assert export.status_code == 200, export.text
    released = await http.post(f"{review}/api/v1/holds/{held.json()['id']}/release",
                               headers=sven, json={"justification": "proceedings closed"})
    assert released.status_code == 200, released.text

    entries = await chain_entries(http, stack, rid, {
        "view_media", "hold_placed", "judicial_confirmation", "export", "hold_released"})
    by_action = {e["action"]: e["event"]["data"] for e in entries}
    assert (by_action["view_media"]["actor"], by_action["view_media"]["role"],
            by_action["view_media"]["purpose"]) == ("rita", "reviewer", "Sichtung nach Einsatz")
    assert (by_action["export"]["actor"], by_action["export"]["role"],
            by_action["export"]["purpose"]) == ("sven", "supervisor",
                                                "Anforderung der Staatsanwaltschaft")
    assert (by_action["hold_placed"]["actor"], by_action["hold_released"]["actor"],
            by_action["judicial_confirmation"]["actor"]) == ("rita", "sven", "sven")
    assert all(d["source_service"] == "review" for a, d in by_action.items()
               if a != "view_metadata")

    verified = await http.get(f"{stack.url('catalog')}/api/v1/audit/verify",
                              headers=auth(mint(stack, "auditor", "audrey")))
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True and verified.json()["first_broken"] is None
