"""Review settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from bwc.settings import CommonSettings


class ReviewSettings(CommonSettings):
    pass
