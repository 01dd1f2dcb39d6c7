"""HTTP Range arithmetic of the media endpoint (``services/review/ranges.py``, RFC 9110 §14):
what a ``Range`` header with its ``If-Range`` asks of an object, without I/O."""

from __future__ import annotations

import pytest

from services.review.ranges import ByteRange, Unsatisfiable, requested_range, strong_etag

SIZE = 1000
ETAG = strong_etag("ab" * 32)


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-99", (0, 99)),            # first bytes
    ("bytes=100-199", (100, 199)),      # a middle range
    ("bytes=990-", (990, 999)),         # open-ended
    ("bytes=-10", (990, 999)),          # suffix
    ("bytes=-5000", (0, 999)),          # suffix longer than the object: all of it
    ("bytes=900-5000", (900, 999)),     # end clamped to the last byte
    ("bytes=999-999", (999, 999)),      # the last byte
    ("BYTES = 0-0", (0, 0)),            # unit case-insensitive, spaces tolerated
    ("bytes=0-99,", (0, 99)),           # an empty list element is no range
])
def test_one_satisfiable_range(header: str, expected: tuple[int, int]) -> None:
    got = requested_range(header, SIZE)
    assert got is not None and (got.start, got.end) == expected
    assert got.length == expected[1] - expected[0] + 1
    assert got.content_range == f"bytes {expected[0]}-{expected[1]}/{SIZE}"


@pytest.mark.parametrize("header", [
    "bytes=1000-",      # starts at the end
    "bytes=5000-6000",  # starts beyond it
    "bytes=-0",         # a suffix of no bytes
    "bytes=50-10",      # last before first: invalid, RFC 9110 §14.2 says 416
])
def test_unsatisfiable_or_invalid_is_416(header: str) -> None:
    with pytest.raises(Unsatisfiable) as raised:
        requested_range(header, SIZE)
    assert raised.value.content_range == f"bytes */{SIZE}"


def test_any_range_of_an_empty_object_is_416() -> None:
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(Unsatisfiable):
            requested_range(header, 0)


@pytest.mark.parametrize("header", [
    None, "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-2-3", "items=0-9",
    "bytes=0-9,20-29",                  # several ranges: the whole object
    "bytes=0x10-20", "bytes= 1 - 2",
    "bytes=" + "9" * 5000 + "-",        # too long to be a real range (and to convert)
])
def test_what_cannot_be_used_gets_the_whole_object(header: str | None) -> None:
    assert requested_range(header, SIZE) is None


def test_if_range_honours_the_range_only_for_the_same_strong_etag() -> None:
    assert requested_range("bytes=0-9", SIZE, if_range=ETAG, etag=ETAG) == ByteRange(0, 9, SIZE)
    for other in (strong_etag("cd" * 32), f"W/{ETAG}", "Wed, 25 Nov 2026 08:00:00 GMT"):
        assert requested_range("bytes=0-9", SIZE, if_range=other, etag=ETAG) is None
    # A stale If-Range with an unsatisfiable range: the whole (new) object, not 416.
    assert requested_range("bytes=5000-", SIZE, if_range="\"old\"", etag=ETAG) is None
