"""Catalogue settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from bwc.settings import CommonSettings


class CatalogSettings(CommonSettings):
    catalog_consumer_group: str = "bwc-catalog"
