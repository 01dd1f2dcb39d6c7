"""Timestamps from clients: always with a time zone, always convertible to UTC.

``0001-01-01T00:00:00+14:00`` and ``9999-12-31T23:59:59-12:00`` parse, but their UTC instants
lie outside what Python (and so asyncpg) can represent: converting them raised a 500 before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; ``ValueError`` naming the problem when it has no zone or no UTC form."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone (RFC 3339, e.g. 2026-11-24T08:15:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} lies outside the representable range once "
                         "converted to UTC (years 1 to 9999)") from None


#: A timestamp with a time zone, converted to UTC (query parameters, request bodies).
UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]
