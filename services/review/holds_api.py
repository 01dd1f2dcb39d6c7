"""Holds (R3), their four-eyes release (R4) and review outcomes. Built by its own change."""

from __future__ import annotations

from bwc.routing import api_router

router = api_router(prefix="/api/v1", tags=["review"])
