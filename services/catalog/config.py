"""Catalogue settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from pydantic import Field

from bwc.settings import CommonSettings


class CatalogSettings(CommonSettings):
    catalog_consumer_group: str = "bwc-catalog"
    #: Seconds between purges of events whose recording never arrived (R5).
    catalog_pending_purge_interval: float = Field(default=600.0, gt=0)
