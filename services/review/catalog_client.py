"""The catalogue's auditor API as review reads it: one recording's audit trail for its
evidence package (R7, R8).

The hash chain lives in the catalogue and review reads no other service's tables, so the trail
comes over HTTP: every page of ``GET /api/v1/audit?recording_id=`` in chain order, with
review's own bearer token (role ``auditor``, subject ``svc-review``) read from
``BWC_REVIEW_CATALOG_TOKEN_FILE``. The file is read again whenever it changes (its mtime,
size or inode), so the token can be rotated under a running service; a Kubernetes Secret
volume swaps the file in place.

Whatever goes wrong — no token file, the catalogue unreachable, slow, or answering anything but
200 (an expired token is a 401) — is ``CatalogUnavailable``: the export answers 503 and writes
no audit entry, because nothing was exported.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import httpx

from services.review.evidence_package import AuditTrail

log = logging.getLogger(__name__)

#: Entries per page: the most the catalogue's API gives.
PAGE = 1000
#: Seconds for one page (connect, wait, read).
TIMEOUT = 10.0


class CatalogUnavailable(Exception):
    """The audit trail could not be read; the message says why (for the 503 and the log)."""


class TokenFile:
    """A bearer token kept in a file, read again when the file changes."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._token = ""

    def token(self) -> str:
        if not self.path:
            raise CatalogUnavailable("no token for the catalogue is configured "
                                     "(BWC_REVIEW_CATALOG_TOKEN_FILE)")
        try:
            # stat follows symlinks: a Secret volume's file is a link into its current data.
            stat = os.stat(self.path)
            seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if seen != self._seen:
                self._token = Path(self.path).read_text(encoding="utf-8").strip()
                self._seen = seen
        except OSError as exc:
            raise CatalogUnavailable(f"the catalogue token file {self.path} cannot be read: "
                                     f"{exc.strerror or exc}") from exc
        if not self._token:
            raise CatalogUnavailable(f"the catalogue token file {self.path} is empty")
        return self._token


class CatalogClient:
    """Opened in the app's lifespan (one connection pool per process), closed with it."""

    def __init__(self, base_url: str, token_file: str | None, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = TokenFile(token_file)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT,
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def audit_trail(self, recording_id: uuid.UUID) -> AuditTrail:
        """Every entry of the recording in the chain so far, in chain order. Entries written
        a moment ago may still be on their way through ``audit.v1``."""
        headers = {"Authorization": f"Bearer {self.tokens.token()}"}
        trail = AuditTrail()
        cursor: str | None = None
        try:
            while True:
                params: dict[str, Any] = {"recording_id": str(recording_id), "limit": PAGE}
                if cursor is not None:
                    params["cursor"] = cursor
                page = await self._page(params, headers)
                try:
                    for item in page["items"]:
                        trail.add(seq=int(item["seq"]),
                                  prev_hash=bytes.fromhex(item["prev_hash"]),
                                  digest=bytes.fromhex(item["hash"]),
                                  canonical_bytes=item["canonical"].encode())
                    cursor = page["next_cursor"]
                except (KeyError, ValueError, TypeError, AttributeError) as exc:
                    raise CatalogUnavailable(
                        "the catalogue's answer is not a page of audit entries") from exc
                if cursor is None:
                    return trail
        except BaseException:
            trail.close()
            raise

    async def _page(self, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._http.get("/api/v1/audit", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise CatalogUnavailable(f"the catalogue at {self.base_url} cannot be reached: "
                                     f"{type(exc).__name__}") from exc
        if response.status_code != 200:
            if response.status_code in (401, 403):
                # An operator's problem, not a client's: the token expired or lost its role.
                log.error("the catalogue refused review's token", extra={
                    "status": response.status_code, "token_file": self.tokens.path})
            raise CatalogUnavailable(f"the catalogue answered HTTP {response.status_code} to "
                                     "the audit trail request")
        try:
            body = response.json()
        except ValueError as exc:
            raise CatalogUnavailable("the catalogue's answer is not JSON") from exc
        if not isinstance(body, dict):
            raise CatalogUnavailable("the catalogue's answer is not a page of audit entries")
        return body
