"""What the store keeps in process memory, each bounded, each only an optimisation.

- ``ByteBudget``: bytes of parts on their way to S3 across the whole process; a PATCH whose
  next part does not fit waits (and stops reading its body) until one is confirmed.
- ``RunningHashes``: the SHA-256 of each upload's bytes so far, keyed by upload id *and* the
  committed offset it covers. Python's hashlib cannot serialise its state, so it cannot live in
  Postgres; another replica (or this one after a restart) simply has none, and the recording is
  read back once at completion instead.
- ``TailCache``: the bytes after an upload's last part, for the common case that the process
  that received them also receives the chunk that fills the part (no GET of the segments).

Both caches are validated against the offset committed in Postgres before use: offsets only
grow, so an entry that names the committed offset is the state that offset was committed with
(multi-replica safe, DESIGN §6).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, size: int) -> int:
        """Reserve ``size`` bytes (at most the whole budget); returns what to release."""
        size = min(size, self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + size <= self.limit)
            self.used += size
        return size

    async def release(self, size: int) -> None:
        async with self._changed:
            self.used -= size
            self._changed.notify_all()


@dataclass
class _Hash:
    offset: int
    hasher: hashlib._Hash


class RunningHashes:
    """At most ``limit`` uploads' hash states (a few hundred bytes each), least recent first out."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._states: OrderedDict[uuid.UUID, _Hash] = OrderedDict()

    def resume(self, upload_id: uuid.UUID, offset: int) -> hashlib._Hash | None:
        """A copy of the hash of bytes ``0…offset``; a fresh one at 0; ``None`` if lost."""
        if offset == 0:
            return hashlib.sha256()
        state = self._states.get(upload_id)
        if state is None or state.offset != offset:
            return None
        return state.hasher.copy()

    def store(self, upload_id: uuid.UUID, offset: int, hasher: hashlib._Hash) -> None:
        self._states[upload_id] = _Hash(offset, hasher)
        self._states.move_to_end(upload_id)
        while len(self._states) > self.limit:
            self._states.popitem(last=False)

    def forget(self, upload_id: uuid.UUID) -> None:
        self._states.pop(upload_id, None)


@dataclass
class _Tail:
    end: int
    data: bytearray


class TailCache:
    """At most ``limit`` bytes of tails in total, least recently used out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._tails: OrderedDict[uuid.UUID, _Tail] = OrderedDict()

    def get(self, upload_id: uuid.UUID, end: int, size: int) -> bytearray | None:
        tail = self._tails.get(upload_id)
        if tail is None or tail.end != end or len(tail.data) != size:
            return None
        self._tails.move_to_end(upload_id)
        return tail.data

    def put(self, upload_id: uuid.UUID, end: int, data: bytearray) -> None:
        self.forget(upload_id)
        if not data or len(data) > self.limit:
            return
        self._tails[upload_id] = _Tail(end, data)
        self.size += len(data)
        while self.size > self.limit:
            _, old = self._tails.popitem(last=False)
            self.size -= len(old.data)

    def forget(self, upload_id: uuid.UUID) -> None:
        old = self._tails.pop(upload_id, None)
        if old is not None:
            self.size -= len(old.data)
