"""HTTP Range requests for one stored object (RFC 9110 §14), without I/O: which bytes a
``Range`` header (with its ``If-Range`` precondition) asks of a representation of ``size``
bytes, so a browser's video player can seek in a recording.

What a request gets:

- no ``Range``, another unit, or a header that does not parse → the whole object (200): a
  server may ignore a ``Range`` it cannot use (§14.2);
- several ranges (``bytes=0-9,20-29``) → the whole object: browsers' players ask for one range,
  and a ``multipart/byteranges`` body is not worth its complexity for them;
- one range: ``a-b`` (``b`` clamped to the last byte), ``a-`` (to the end), ``-n`` (the last
  ``n`` bytes, all of them if ``n`` exceeds the size) → 206;
- a range that starts at or beyond the end, a suffix of zero bytes, ``b < a``, any range of an
  empty object → ``Unsatisfiable`` (416 with ``Content-Range: bytes */size``);
- ``If-Range`` that does not match the current strong ETag exactly (another ETag, a weak one,
  a date: we send no ``Last-Modified``) → the whole object, so a player never splices bytes of
  two different representations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Longer headers are ignored, not parsed: no legitimate single range needs more, and Python
#: refuses to convert integers of more than 4300 digits.
MAX_HEADER_LENGTH = 200

_SINGLE_RANGE = re.compile(r"(\d*)-(\d*)")


class Unsatisfiable(ValueError):
    """The range asks for no byte the object has (or is invalid): 416."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the object has {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of an object of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def strong_etag(sha256_hex: str) -> str:
    """The ETag of a recording: its SHA-256, which names exactly these bytes (R6)."""
    return f'"{sha256_hex}"'


def requested_range(
    range_header: str | None, size: int, *, if_range: str | None = None,
    etag: str | None = None,
) -> ByteRange | None:
    """The one range to send, or ``None`` for the whole object; ``Unsatisfiable`` for 416."""
    if range_header is None or len(range_header) > MAX_HEADER_LENGTH:
        return None
    if if_range is not None and (etag is None or if_range.strip() != etag):
        return None
    unit, sep, specs = range_header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in specs.split(",") if p.strip()]
    if len(parts) != 1:
        return None
    match = _SINGLE_RANGE.fullmatch(parts[0])
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if end < start or start >= size:
        raise Unsatisfiable(size)
    return ByteRange(start, min(end, size - 1), size)
