"""Issue 5, defect 6: bad catalogue queries get a 400 problem naming the parameter, never a
500 (NUL reached Postgres; out-of-range instants overflowed in the driver)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import auth, mint


def _cursor(recorded_at: str) -> str:
    raw = json.dumps([recorded_at, "00000000-0000-4000-8000-000000000000"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(("query", "needle"), [
    ("device_id=%00", "device_id"),
    ("officer_id=%00", "officer_id"),
    ("officer_id=a%E2%80%AEb", "officer_id"),
    ("cursor=%00", "cursor"),
    ("recorded_from=0001-01-01T00:00:00%2B14:00", "recorded_from"),
    ("recorded_to=9999-12-31T23:59:59-12:00", "recorded_to"),
    (f"cursor={_cursor('0001-01-01T00:00:00+14:00')}", "cursor"),
    (f"cursor={_cursor('2026-01-01T00:00:00')}", "cursor"),
])
async def test_defect6_bad_recordings_query_is_400(
    stack: Stack, http: httpx.AsyncClient, query: str, needle: str
) -> None:
    response = await http.get(f"{stack.url('catalog')}/api/v1/recordings?{query}",
                              headers=auth(mint(stack, "reviewer", "rita")))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"]
