"""The embedded S3 endpoint's version listing (``bwc/devstack/s3_server.py``): the same answer
as moto's, and the stored bytes intact after it (a listing's copies share the versions' byte
buffers and must never close them)."""

from __future__ import annotations

import asyncio
import os
import uuid

from bwc.devstack.stack import Stack
from tests.fixtures.clients import object_store


async def test_listing_versions_answers_moto_s_way_and_leaves_the_bytes_intact(
    stack: Stack,
) -> None:
    store = object_store(stack)
    prefix = f"test-listing/{uuid.uuid4()}/"
    first, second = os.urandom(300_000), os.urandom(1000)
    v1 = await store.put_bytes(f"{prefix}a", first)
    v2 = await store.put_bytes(f"{prefix}a", second)
    v3 = await store.put_bytes(f"{prefix}b", first)
    for _ in range(3):  # each listing's copies are collected as soon as it is answered
        listed = await store.list_versions(prefix)
        assert sorted(listed) == sorted([(f"{prefix}a", v1), (f"{prefix}a", v2),
                                         (f"{prefix}b", v3)])
        assert sorted(await store.list_versions(f"{prefix}a", exact=True)) == sorted([
            (f"{prefix}a", v1), (f"{prefix}a", v2)])
        await asyncio.sleep(0.05)
    assert await store.read_bytes(f"{prefix}a", len(first), version_id=v1) == first
    assert await store.read_bytes(f"{prefix}a", len(second), version_id=v2) == second
    assert await store.read_bytes(f"{prefix}b", len(first), version_id=v3) == first
    assert await store.delete_prefix(prefix) == 3
