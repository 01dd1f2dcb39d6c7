"""The development token issuer that stands in for Keycloak on the embedded stack.

It keeps an RSA key pair in a folder (``var/dev-issuer`` by default), publishes the public half
as a JWKS file the services read, and mints short-lived tokens for any role.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_DIR = Path("var/dev-issuer")
KEY_FILE = "key.pem"
JWKS_FILE = "jwks.json"
#: Review's own token for the catalogue's audit API (``BWC_REVIEW_CATALOG_TOKEN_FILE``).
REVIEW_CATALOG_TOKEN_FILE = "svc-review.token"  # noqa: S105 - a file name, not a secret
REVIEW_CATALOG_SUB = "svc-review"


def ensure_keys(directory: Path = DEFAULT_DIR) -> Path:
    """Create the key pair and JWKS if missing; returns the JWKS path."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = directory / KEY_FILE, directory / JWKS_FILE
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"})
        jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2))
    return jwks_path


def mint(
    *,
    role: str | list[str],
    sub: str,
    directory: Path = DEFAULT_DIR,
    issuer: str = "bwc-dev-issuer",
    audience: str = "bwc",
    ttl_seconds: int = 8 * 3600,
) -> str:
    ensure_keys(directory)
    key = serialization.load_pem_private_key((directory / KEY_FILE).read_bytes(), password=None)
    keys = json.loads((directory / JWKS_FILE).read_text())["keys"]
    kid = next(k["kid"] for k in keys if k.get("use", "sig") == "sig")
    now = int(time.time())
    roles = [role] if isinstance(role, str) else role
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_seconds,
        "roles": roles,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]


def write_token_file(
    path: Path, *, role: str, sub: str, directory: Path = DEFAULT_DIR, ttl_seconds: int,
) -> Path:
    """Mint a token into ``path`` (owner-only), for a service that reads its bearer token
    from a file as it would from a mounted Secret. Replaced whole, so a reader that watches
    the file never sees half a token."""
    token = mint(role=role, sub=sub, directory=directory, ttl_seconds=ttl_seconds)
    partial = path.with_name(path.name + ".new")
    partial.write_text(token + "\n")
    partial.chmod(0o600)
    partial.replace(path)
    return path
