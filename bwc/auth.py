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
from bwc.text import IDENTIFIER

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

    Verification never waits on the IdP while the keys at hand will do (a slow IdP once
    stalled every request for seconds): keys older than ``max_age`` are re-read in the
    background and used meanwhile; only a caller without a usable key waits — on the first
    load, for keys older than ``max_stale`` (a withdrawn key is not trusted for ever), or for a
    ``kid`` it does not know. At most one fetch runs at a time, and unknown ``kid``s trigger a
    re-read at most every ``min_interval`` seconds, so forged tokens cannot hammer the IdP.
    ``leeway`` seconds of clock skew are allowed on ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self, jwks_url: str, *, issuer: str, audience: str, max_age: float = 600.0,
        min_interval: float = 60.0, max_stale: float | None = None, leeway: float = 30.0,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.max_age = max_age
        self.max_stale = 2 * max_age if max_stale is None else max_stale
        self.min_interval = min_interval
        self.leeway = leeway
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._started_at: float | None = None
        self._fetch_task: asyncio.Task[None] | None = None

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
        """RSA signature keys only: Keycloak also publishes encryption keys (``use: enc``) and
        may publish EC or EdDSA signing keys, which cannot verify the RS256 tokens accepted
        here (PyJWT raises TypeError for such a key: a token naming it was a 500)."""
        keys: dict[str, PyJWK] = {}
        entries = jwks.get("keys", []) if isinstance(jwks, dict) else []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or "kid" not in entry or \
                    entry.get("use", "sig") != "sig" or entry.get("kty") != "RSA":
                continue
            try:
                keys[str(entry["kid"])] = PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                log.warning("ignoring an unusable JWKS key", extra={"kid": entry["kid"]})
        return keys

    async def _load(self) -> None:
        try:
            self._keys = self._signing_keys(await self._fetch())
        except (OSError, ValueError, httpx.HTTPError) as exc:
            if not self._keys:
                raise Problem(503, "Identity provider unreachable",
                              f"cannot load the token keys: {exc}") from exc
            log.warning("JWKS refresh failed; keeping the current keys",
                        extra={"error": repr(exc)})
        self._fetched_at = time.monotonic()

    def _start_fetch(self) -> asyncio.Task[None]:
        """The running fetch, or a new one: never two at once."""
        if self._fetch_task is None or self._fetch_task.done():
            self._started_at = time.monotonic()
            self._fetch_task = asyncio.create_task(self._load(), name="jwks-fetch")
            # A background refresh nobody awaits must not log "exception never retrieved".
            self._fetch_task.add_done_callback(
                lambda t: t.cancelled() or t.exception())
        return self._fetch_task

    async def _key(self, kid: str) -> PyJWK | None:
        now = time.monotonic()
        age = None if self._fetched_at is None else now - self._fetched_at
        if age is None or age > self.max_stale:
            await asyncio.shield(self._start_fetch())  # no usable keys: wait
        elif age > self.max_age:
            self._start_fetch()  # refresh in the background; the keys at hand still serve
        if kid in self._keys:
            return self._keys[kid]
        running = self._fetch_task is not None and not self._fetch_task.done()
        if running or self._started_at is None or now - self._started_at >= self.min_interval:
            await asyncio.shield(self._start_fetch())  # maybe the IdP rotated in a new key
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
                leeway=self.leeway,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise Problem(401, "Invalid token", str(exc)) from exc
        return principal_from_claims(claims)


def _role_names(value: object, claim: str) -> list[str]:
    """A roles claim as a list of names. A single string is one role (some IdP mappers emit
    single-valued claims as strings), never a set of characters."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise Problem(401, "Invalid token", f"claim {claim!r} must be a list of role names")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Subject and roles of verified claims; a malformed claim is the token's fault (401)."""
    realm = claims.get("realm_access", {})
    if not isinstance(realm, dict):
        raise Problem(401, "Invalid token", "claim 'realm_access' must be an object")
    names = (_role_names(claims.get("roles"), "roles")
             + _role_names(realm.get("roles"), "realm_access.roles"))
    sub = claims["sub"]
    try:
        IDENTIFIER.check(sub if isinstance(sub, str) else "")
    except ValueError as exc:
        raise Problem(401, "Invalid token", f"claim 'sub' {exc}") from None
    roles = frozenset(Role(r) for r in names if r in Role.__members__.values())
    return Principal(sub=sub, roles=roles)


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
    """The verified caller, once per request (the route class may have verified it already)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        verifier: JwksVerifier = request.app.state.verifier
        principal = await verifier.verify(bearer_token(request))
        request.state.principal = principal
    return principal


def check_roles(principal: Principal, allowed: frozenset[Role]) -> None:
    if not principal.has(*allowed):
        names = ", ".join(sorted(r.value for r in allowed))
        raise Problem(403, "Forbidden", f"this endpoint requires one of the roles: {names}")


def require_roles(*allowed: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold at least one of ``allowed``. The roles are also kept on
    the dependency (``allowed_roles``) so ``bwc.routing`` can check them before the body."""
    roles = frozenset(allowed)

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        check_roles(principal, roles)
        return principal

    dependency.__doc__ = f"Requires role: {', '.join(r.value for r in allowed)}"
    dependency.allowed_roles = roles  # type: ignore[attr-defined]
    return dependency
