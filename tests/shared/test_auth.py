"""Token validation against a JWKS as Keycloak publishes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bwc import dev_issuer
from bwc.auth import JwksVerifier, Role
from bwc.devstack.processes import free_port
from bwc.problems import Problem


def _verifier(jwks: Path, **kwargs: float) -> JwksVerifier:
    return JwksVerifier(f"file://{jwks}", issuer="bwc-dev-issuer", audience="bwc", **kwargs)


async def test_encryption_keys_in_the_jwks_are_ignored(tmp_path: Path) -> None:
    jwks_path = dev_issuer.ensure_keys(tmp_path)
    jwks = json.loads(jwks_path.read_text())
    # Keycloak publishes an RSA-OAEP encryption key next to the signing key.
    enc = {**jwks["keys"][0], "kid": "enc-key", "use": "enc", "alg": "RSA-OAEP"}
    jwks_path.write_text(json.dumps({"keys": [enc, *jwks["keys"]]}))
    token = dev_issuer.mint(role=["reviewer", "not-a-role"], sub="rita", directory=tmp_path)
    principal = await _verifier(jwks_path).verify(token)
    assert principal.sub == "rita"
    assert principal.roles == frozenset({Role.REVIEWER})


async def test_keycloak_realm_roles_are_read(tmp_path: Path) -> None:
    import time

    import jwt
    from cryptography.hazmat.primitives import serialization

    jwks_path = dev_issuer.ensure_keys(tmp_path)
    key = serialization.load_pem_private_key((tmp_path / "key.pem").read_bytes(), None)
    kid = json.loads(jwks_path.read_text())["keys"][0]["kid"]
    token = jwt.encode({"iss": "bwc-dev-issuer", "aud": "bwc", "sub": "sven",
                        "exp": int(time.time()) + 60,
                        "realm_access": {"roles": ["supervisor", "offline_access"]}},
                       key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]
    principal = await _verifier(jwks_path).verify(token)
    assert principal.roles == frozenset({Role.SUPERVISOR})


async def test_withdrawn_key_stops_being_trusted(tmp_path: Path) -> None:
    jwks_path = dev_issuer.ensure_keys(tmp_path)
    token = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path)
    verifier = _verifier(jwks_path, max_age=0, min_interval=0)
    assert (await verifier.verify(token)).sub == "rita"
    jwks_path.write_text(json.dumps({"keys": []}))  # the IdP rotated the key out
    with pytest.raises(Problem) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401


async def test_wrong_audience_or_expired_is_401(tmp_path: Path) -> None:
    jwks_path = dev_issuer.ensure_keys(tmp_path)
    expired = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path, ttl_seconds=-60)
    other_audience = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path,
                                     audience="someone-else")
    for token in (expired, other_audience, "not.a.token"):
        with pytest.raises(Problem) as refused:
            await _verifier(jwks_path).verify(token)
        assert refused.value.status == 401


async def test_unreachable_idp_is_503_not_500(tmp_path: Path) -> None:
    token = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path)
    verifier = JwksVerifier(f"http://127.0.0.1:{free_port()}/certs", issuer="bwc-dev-issuer",
                            audience="bwc")
    with pytest.raises(Problem) as refused:
        await verifier.verify(token)
    assert refused.value.status == 503
