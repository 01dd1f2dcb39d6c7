"""Catalogue settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from pydantic import Field

from bwc.settings import CommonSettings


class CatalogSettings(CommonSettings):
    catalog_consumer_group: str = "bwc-catalog"
    #: Seconds between purges of events whose recording never arrived (R5).
    catalog_pending_purge_interval: float = Field(default=600.0, gt=0)
    #: The audit chain's consumer of ``audit.v1`` has a group of its own (R7).
    catalog_audit_consumer_group: str = "bwc-catalog-audit"
    #: Seconds between runs of the audit chain's retention step (entries older than two years).
    catalog_audit_retention_interval: float = Field(default=3600.0, gt=0, le=86400)
