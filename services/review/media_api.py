"""Media of a recording with HTTP Range, audited (R7). Built by its own change."""

from __future__ import annotations

from bwc.routing import api_router

router = api_router(prefix="/api/v1", tags=["review"])
