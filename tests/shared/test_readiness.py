"""Readiness fits each service (issue 11, item 4): ingest goes unready while S3 is away, and
ready again when it is back; the broker never decides (see test_kafka_outage.py)."""

from __future__ import annotations

import asyncio

import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.extra_ingest import extra_ingest
from tests.fixtures.gate import s3_gate


async def _status(http: httpx.AsyncClient, url: str, want: int) -> httpx.Response:
    for _ in range(50):
        response = await http.get(f"{url}/readyz")
        if response.status_code == want:
            return response
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz never answered {want}: {response.text}")


async def test_ingest_is_unready_while_s3_is_away(stack: Stack, http: httpx.AsyncClient) -> None:
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            await _status(http, base, 200)
            gate.open = False
            gate.close_all()
            body = (await _status(http, base, 503)).json()
            assert body["checks"]["object_store"].startswith("error"), body
            assert "check object_store failed" in body["reasons"]
            assert body["checks"]["database"] == "ok"
            gate.open = True
            await _status(http, base, 200)
