"""Evidence export and judicial confirmations (R8). Built by its own change."""

from __future__ import annotations

from bwc.routing import api_router

router = api_router(prefix="/api/v1", tags=["review"])
