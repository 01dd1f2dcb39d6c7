"""Streaming one PATCH body into S3 parts with bounded memory.

The body is read piece by piece; whenever a full part has gathered it is sent to S3 at once.
What is left (less than one part) is handed back as the new tail, which the caller stores
with the offset. Memory per upload therefore stays below one part plus one network read,
whatever the file size.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.requests import ClientDisconnect

from bwc.problems import Problem
from bwc.s3 import ObjectStore, UploadedPart

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


@dataclass
class ChunkResult:
    received: int
    new_parts: list[UploadedPart]
    tail: bytes
    disconnected: bool


async def stream_into_parts(
    body: AsyncIterator[bytes],
    *,
    store: ObjectStore,
    object_key: str,
    s3_upload_id: str,
    first_part_number: int,
    tail: bytes,
    part_size: int,
    remaining: int,
    checksum: ChunkChecksum | None,
    idle_timeout: float,
) -> ChunkResult:
    buffer = bytearray(tail)
    parts: list[UploadedPart] = []
    received = 0
    disconnected = False
    pieces = aiter(body)
    try:
        while True:
            try:
                # A stalled sender must not hold a write slot and a connection forever.
                async with asyncio.timeout(idle_timeout):
                    piece = await anext(pieces)
            except StopAsyncIteration:
                break
            except TimeoutError:
                disconnected = True  # treated like a dropped connection: keep what arrived
                break
            received += len(piece)
            if received > remaining:
                raise Problem(413, "Upload too large",
                              f"the body goes beyond Upload-Length by {received - remaining} "
                              "bytes; nothing of this request was kept")
            if checksum is not None:
                checksum.hasher.update(piece)
            buffer += piece
            while len(buffer) >= part_size:
                number = first_part_number + len(parts)
                data = bytes(buffer[:part_size])
                del buffer[:part_size]
                # A part that is uploaded but never recorded (failed checksum, lost race) is
                # harmless: the next attempt overwrites the same part number, and
                # CompleteMultipartUpload only takes the recorded parts.
                etag = await store.upload_part(object_key, s3_upload_id, number, data)
                parts.append(UploadedPart(number, etag, len(data)))
    except ClientDisconnect:
        disconnected = True
    return ChunkResult(received, parts, bytes(buffer), disconnected)
