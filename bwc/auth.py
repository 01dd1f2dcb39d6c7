"""Bearer-token authentication and role checks.

Tokens are OIDC JWTs (RS256) validated against the issuer's JWKS: Keycloak in production, the
development issuer (``bwc token``) locally. Roles are read from a top-level ``roles`` claim or
from Keycloak's ``realm_access.roles``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import httpx
import jwt
from fastapi import Depends, Request
from jwt import PyJWK

from bwc.problems import Problem

log = logging.getLogger(__name__)


class Role(StrEnum):
    DEVICE = "device"
    OFFICER = "officer"
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    sub: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


class JwksVerifier:
    """Validates tokens against a JWKS loaded from ``file://`` or ``http(s)://``.

    The key set is re-read every ``max_age`` seconds, so a key the IdP withdraws stops being
    trusted; an unknown key id triggers an early re-read, at most every ``min_interval``.
    """

    def __init__(
        self, jwks_url: str, *, issuer: str, audience: str, max_age: float = 600.0,
        min_interval: float = 30.0,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.max_age = max_age
        self.min_interval = min_interval
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> dict[str, Any]:
        url = urlparse(self.jwks_url)
        if url.scheme == "file":
            path = Path(url.netloc + url.path)
            data: dict[str, Any] = json.loads(await asyncio.to_thread(path.read_text))
            return data
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(self.jwks_url)
            response.raise_for_status()
            fetched: dict[str, Any] = response.json()
            return fetched

    @staticmethod
    def _signing_keys(jwks: dict[str, Any]) -> dict[str, PyJWK]:
        """Signature keys only: Keycloak also publishes encryption keys (``use: enc``)."""
        keys: dict[str, PyJWK] = {}
        for entry in jwks.get("keys", []):
            if "kid" not in entry or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                log.warning("ignoring an unusable JWKS key", extra={"kid": entry["kid"]})
        return keys

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = None if self._fetched_at is None else time.monotonic() - self._fetched_at
            due = age is None or age > self.max_age or (force and age > self.min_interval)
            if not due:
                return
            try:
                self._keys = self._signing_keys(await self._fetch())
            except (OSError, ValueError, httpx.HTTPError) as exc:
                if not self._keys:
                    raise Problem(503, "Identity provider unreachable",
                                  f"cannot load the token keys: {exc}") from exc
                log.warning("JWKS refresh failed; keeping the current keys",
                            extra={"error": repr(exc)})
            self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> PyJWK | None:
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        return self._keys.get(kid)

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Problem(401, "Invalid token", f"malformed bearer token: {exc}") from exc
        key = await self._key(str(header.get("kid", "")))
        if key is None:
            raise Problem(401, "Invalid token", "token signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise Problem(401, "Invalid token", str(exc)) from exc
        raw = set(claims.get("roles", [])) | set(claims.get("realm_access", {}).get("roles", []))
        roles = frozenset(Role(r) for r in raw if r in Role.__members__.values())
        return Principal(sub=str(claims["sub"]), roles=roles)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "Authentication required",
            "send an 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": 'Bearer realm="bwc"'},
        )
    return token.strip()


async def current_principal(request: Request) -> Principal:
    verifier: JwksVerifier = request.app.state.verifier
    return await verifier.verify(bearer_token(request))


def require_roles(*allowed: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold at least one of ``allowed``."""
    names = ", ".join(r.value for r in allowed)

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.has(*allowed):
            raise Problem(403, "Forbidden", f"this endpoint requires one of the roles: {names}")
        return principal

    dependency.__doc__ = f"Requires role: {names}"
    return dependency
