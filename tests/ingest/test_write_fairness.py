"""One slow device cannot take a replica's writes: a minimum transfer rate per PATCH and a cap
of concurrent writes per device (an extra ingest process with short limits)."""

from __future__ import annotations

import asyncio

import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    new_upload,
    patch_headers,
    raw_patch,
    register_device,
    upload_offset,
)
from tests.fixtures.extra_ingest import extra_ingest


async def test_slow_device_cannot_hold_all_write_slots(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    other = await register_device(stack, http)
    async with extra_ingest(
        stack, BWC_INGEST_MAX_CONCURRENT_WRITES="4", BWC_INGEST_MAX_WRITES_PER_DEVICE="2",
        BWC_INGEST_WRITE_WAIT="2", BWC_INGEST_BODY_IDLE_TIMEOUT="60",
        BWC_INGEST_MIN_RATE="1000", BWC_INGEST_MIN_RATE_GRACE="1",
        BWC_INGEST_MIN_RATE_WINDOW="1",
    ) as (base, _):
        slow_urls = [await new_upload(http, stack, device, 8 * MIB, base_url=base)
                     for _ in range(4)]
        # Four PATCHes of one device: 1000 bytes, then a byte every 0.5 s for 10 s — never
        # idle, so the idle timeout alone would let them hold every slot.
        holders = [asyncio.create_task(asyncio.to_thread(
            raw_patch, u, device.token, send=1000, hold=10)) for u in slow_urls]
        await asyncio.sleep(0.5)
        url = await new_upload(http, stack, other, 10, base_url=base)
        response = await http.patch(url, content=b"0123456789",
                                    headers=patch_headers(other.token, 0))
        answers = await asyncio.gather(*holders)
        assert response.status_code == 204, response.text  # the other device got a slot

        statuses = sorted(a.split(b" ", 2)[1] for a in answers)
        assert statuses == [b"429", b"429", b"503", b"503"], answers
        assert all(b"retry-after: 5" in a.lower() for a in answers)
        cut = [u for u, a in zip(slow_urls, answers, strict=True) if b" 503 " in a]
        assert all(b"Transfer too slow" in a for a in answers if b" 503 " in a)
        # What arrived before the cut-off is kept.
        for u in cut:
            assert await upload_offset(http, u, device) >= 1000
