"""R6: the recordings bucket must have object lock, or legal holds cannot protect evidence."""

from __future__ import annotations

import uuid

import pytest

from bwc.devstack.stack import Stack
from bwc.s3 import ObjectStore
from tests.fixtures.clients import object_store


async def test_a_bucket_without_object_lock_is_refused(stack: Stack) -> None:
    client = object_store(stack).client
    name = f"no-lock-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)  # created by someone else, without object lock
    with pytest.raises(RuntimeError, match="object lock"):
        await ObjectStore(client, name).ensure_bucket()


async def test_the_recordings_bucket_has_object_lock(stack: Stack) -> None:
    assert await object_store(stack).object_lock_enabled()
