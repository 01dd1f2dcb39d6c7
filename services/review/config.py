"""Review settings (``BWC_*``) on top of the shared ones."""

from __future__ import annotations

from pydantic import Field

from bwc.settings import CommonSettings


class ReviewSettings(CommonSettings):
    #: Consumer group of review's view of ``recordings.v1`` (its replicas share it).
    review_consumer_group: str = "bwc-review"
    #: Seconds a request for a recording review does not know yet waits for its
    #: ``recording.ingested`` to arrive, so that a recording the catalogue already shows can be
    #: held at once (both consume the same topic, each at its own pace).
    review_arrival_wait: float = Field(default=5.0, ge=0, le=60)
