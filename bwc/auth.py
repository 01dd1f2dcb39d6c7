"""Bearer-token authentication and role checks.

Tokens are OIDC JWTs (RS256) validated against the issuer's JWKS: Keycloak in production, the
development issuer (``bwc token``) locally. Roles are read from a top-level ``roles`` claim or
from Keycloak's ``realm_access.roles``.
"""

from __future__ import annotations

import asyncio
import json
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
    """Validates tokens against a JWKS loaded from ``file://`` or ``http(s)://``."""

    #: Unknown key ids trigger a refetch at most this often (key rotation without a DoS lever).
    REFRESH_MIN_INTERVAL = 30.0

    def __init__(self, jwks_url: str, *, issuer: str, audience: str) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
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

    async def _key(self, kid: str) -> PyJWK | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at > (
                self.REFRESH_MIN_INTERVAL if self._keys else 0
            ):
                jwks = await self._fetch()
                self._keys = {k["kid"]: PyJWK(k) for k in jwks.get("keys", []) if "kid" in k}
                self._fetched_at = time.monotonic()
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
