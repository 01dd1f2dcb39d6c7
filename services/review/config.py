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
    #: The catalogue's base URL: an evidence export reads the recording's audit trail from its
    #: auditor API (``GET /api/v1/audit``), the only reader of the hash chain (R7).
    review_catalog_url: str = "http://127.0.0.1:8002"
    #: A file holding review's own bearer token for that API (a JWT with the role ``auditor``,
    #: subject ``svc-review``). Read again whenever the file changes, so the IdP's token can be
    #: rotated under a running service (a Kubernetes Secret volume is updated in place).
    #: Unset: exports answer 503, everything else works.
    review_catalog_token_file: str | None = None

    def model_post_init(self, __context: object) -> None:
        super().model_post_init(__context)
        # Exports are the one way evidence leaves the system (R8); production must have them.
        if self.environment == "prod" and not self.review_catalog_token_file:
            raise ValueError("BWC_REVIEW_CATALOG_TOKEN_FILE must be set in prod: an evidence "
                             "export needs review's token for the catalogue's audit trail")
