"""Reading one PATCH body: piece by piece, bounded by ``Upload-Length``, hashed for the tus
chunk checksum; what becomes of the pieces is the upload store's business (``store``).

A sender that is idle or too slow is cut off (``TransferGuard``): one slow device must not
hold a write slot and its database connection for hours. What arrived before is kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect

from bwc.problems import Problem
from bwc.shutdown import Shutdown

#: Chunk checksum algorithms (tus checksum extension). tuspy and tus-js-client send sha1.
CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}


@dataclass
class ChunkChecksum:
    algorithm: str
    expected: bytes
    hasher: hashlib._Hash = field(repr=False)

    @classmethod
    def parse(cls, header: str | None) -> ChunkChecksum | None:
        if header is None:
            return None
        algorithm, _, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise Problem(400, "Unsupported checksum algorithm",
                          f"Upload-Checksum algorithm {algorithm!r} is not supported; use one "
                          f"of {', '.join(CHECKSUM_ALGORITHMS)}")
        try:
            expected = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise Problem(400, "Invalid checksum", "Upload-Checksum value is not base64") from None
        return cls(algorithm, expected, CHECKSUM_ALGORITHMS[algorithm]())

    def matches(self) -> bool:
        return self.hasher.digest() == self.expected


DEADLINE_PASSED = "the R2 deadline passed while the body was arriving"
SHUTTING_DOWN = "this ingest instance is shutting down"


class CutOff(Exception):
    """The server ended the body: the sender was idle or too slow, the server stops, or the
    upload's R2 deadline passed."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class TransferGuard:
    """Idle timeout per read, and a minimum rate over windows of time spent waiting for the
    sender (time the server spends sending parts to S3 is not the sender's fault)."""

    idle_timeout: float
    #: The process's shutdown signal: the body ends at once when it comes (``bwc.serve``).
    stop: Shutdown | None = None
    min_rate: int = 0
    grace: float = 0.0
    window: float = 30.0
    #: The upload's R2 deadline: the body ends there (nothing of it may be kept after it).
    deadline: datetime | None = None
    waited: float = 0.0
    _window_waited: float = 0.0
    _window_bytes: int = 0
    #: The timeout of the read in progress, which a shutdown moves to "now".
    _waiting: asyncio.Timeout | None = None

    def interrupt(self) -> None:
        """End the read in progress now (called by ``Shutdown`` while the body is read)."""
        if self._waiting is not None:
            self._waiting.reschedule(asyncio.get_running_loop().time())

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def read(self, pieces: AsyncIterator[bytes]) -> bytes:
        """The next piece; raises ``StopAsyncIteration`` at the end and ``CutOff``.

        The wait for a piece itself ends at a shutdown (``interrupt``) and at the R2
        deadline: a device that sends nothing at that moment must not keep the request open
        until the idle timeout (past the shutdown grace it would be cancelled and every byte
        of it lost; past the deadline its bytes would stay in S3, R2)."""
        if self._stopping():
            raise CutOff("shutdown", SHUTTING_DOWN)
        timeout, on_timeout = self.idle_timeout, "idle"
        if self.deadline is not None:
            left = (self.deadline - datetime.now(UTC)).total_seconds()
            if left <= 0:
                raise CutOff("deadline", DEADLINE_PASSED)
            if left < timeout:
                timeout, on_timeout = left, "deadline"
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout) as self._waiting:
                piece = await anext(pieces)  # StopAsyncIteration at the end, ClientDisconnect
        except TimeoutError:
            if self._stopping():
                raise CutOff("shutdown", SHUTTING_DOWN) from None
            if on_timeout == "deadline":
                raise CutOff("deadline", DEADLINE_PASSED) from None
            raise CutOff("idle", f"nothing arrived for {self.idle_timeout:g} s") from None
        finally:
            self._waiting = None
        waited = time.monotonic() - started
        self.waited += waited
        self._window_waited += waited
        self._window_bytes += len(piece)
        if self.min_rate and self._window_waited >= self.window:
            rate = self._window_bytes / self._window_waited
            if self.waited > self.grace and rate < self.min_rate:
                raise CutOff("slow", f"the body arrived at {rate:.0f} bytes/s over the last "
                                     f"{self._window_waited:.0f} s, below the minimum of "
                                     f"{self.min_rate} bytes/s")
            self._window_waited, self._window_bytes = 0.0, 0
        return piece


async def read_body(
    body: AsyncIterator[bytes], *, remaining: int, checksum: ChunkChecksum | None,
    guard: TransferGuard,
) -> AsyncIterator[bytes]:
    """The body's pieces, refusing more than ``remaining`` bytes (413) and hashing them for the
    chunk checksum; ends on a disconnect or raises ``CutOff``."""
    pieces = aiter(body)
    received = 0
    with guard.stop.listening(guard.interrupt) if guard.stop else contextlib.nullcontext():
        while True:
            try:
                piece = await guard.read(pieces)
            except StopAsyncIteration:
                return
            received += len(piece)
            if received > remaining:
                raise Problem(413, "Upload too large",
                              f"the body goes beyond Upload-Length by {received - remaining} "
                              "bytes; nothing of this request was kept")
            if checksum is not None:
                checksum.hasher.update(piece)
            yield piece


class Body:
    """A PATCH body as the store reads it: its pieces, ending quietly when the device goes
    away or the server ends it (``disconnected``, ``cut_off`` say which)."""

    def __init__(self, body: AsyncIterator[bytes], *, remaining: int,
                 checksum: ChunkChecksum | None, guard: TransferGuard) -> None:
        self._pieces = read_body(body, remaining=remaining, checksum=checksum, guard=guard)
        self.disconnected = False
        self.cut_off: CutOff | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._read()

    async def _read(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._pieces:
                yield piece
        except ClientDisconnect:
            self.disconnected = True
        except CutOff as exc:
            self.disconnected, self.cut_off = True, exc


async def drain(
    body: AsyncIterator[bytes], *, remaining: int, checksum: ChunkChecksum | None,
    guard: TransferGuard,
) -> tuple[int, bool]:
    """Read bytes the server already stores (a repeated last PATCH) without keeping them;
    returns ``(received, complete)`` where ``complete`` means the body was read to its end."""
    received = 0
    try:
        async for piece in read_body(body, remaining=remaining, checksum=checksum, guard=guard):
            received += len(piece)
    except (ClientDisconnect, CutOff):
        return received, False
    return received, True
