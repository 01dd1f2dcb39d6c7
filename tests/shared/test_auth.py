"""Token validation against a JWKS as Keycloak publishes it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from bwc import dev_issuer
from bwc.auth import JwksVerifier, Role
from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from bwc.problems import Problem
from tests.fixtures.clients import auth, urlsafe_b64
from tests.fixtures.services import extra_service


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


# --- Issue 5, defect 7: token verification must not stall while the JWKS is fetched ---------


class SlowJwks:
    """A JWKS endpoint on loopback that answers after ``delay`` seconds and counts requests."""

    def __init__(self, jwks: bytes) -> None:
        self.jwks = jwks
        self.delay = 0.0
        self.requests = 0
        self.server: asyncio.AbstractServer | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        await asyncio.sleep(self.delay)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(self.jwks), self.jwks))
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/certs"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def _http_verifier(url: str, **kwargs: float) -> JwksVerifier:
    return JwksVerifier(url, issuer="bwc-dev-issuer", audience="bwc", **kwargs)


def _token(tmp_path: Path, claims: dict[str, object], kid: str | None = None) -> str:
    import time

    import jwt
    from cryptography.hazmat.primitives import serialization

    jwks_path = dev_issuer.ensure_keys(tmp_path)
    key = serialization.load_pem_private_key((tmp_path / "key.pem").read_bytes(), None)
    kid = kid or json.loads(jwks_path.read_text())["keys"][0]["kid"]
    return jwt.encode({"iss": "bwc-dev-issuer", "aud": "bwc", "sub": "sven",
                       "exp": int(time.time()) + 60, **claims},
                      key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]


async def test_defect7_verification_does_not_wait_for_a_slow_refresh(tmp_path: Path) -> None:
    jwks = dev_issuer.ensure_keys(tmp_path).read_bytes()
    token = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path)
    idp = SlowJwks(jwks)
    async with idp as url:
        verifier = _http_verifier(url, max_age=0.5)  # keys usable while younger than 1 s
        assert (await verifier.verify(token)).sub == "rita"
        await asyncio.sleep(0.6)  # the keys are now due for a refresh
        idp.delay = 3.0  # and the IdP has become slow
        started = time.monotonic()
        results = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
        assert time.monotonic() - started < 1.0
        assert {p.sub for p in results} == {"rita"}
        await asyncio.sleep(0.1)
        assert idp.requests == 2  # one background refresh, not one per caller


async def test_defect7_unknown_kid_does_not_stall_known_tokens(tmp_path: Path) -> None:
    jwks = dev_issuer.ensure_keys(tmp_path).read_bytes()
    good = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path)
    forged = [_token(tmp_path, {"roles": ["admin"]}, kid=f"nope-{i}") for i in range(10)]
    idp = SlowJwks(jwks)
    async with idp as url:
        verifier = _http_verifier(url, min_interval=0.5)
        await verifier.verify(good)
        await asyncio.sleep(0.6)  # an unknown kid may now trigger a re-read
        idp.delay = 2.0
        unknown = asyncio.gather(*(verifier.verify(t) for t in forged), return_exceptions=True)
        await asyncio.sleep(0.1)  # the forged tokens have triggered a (slow) re-read
        started = time.monotonic()
        assert (await verifier.verify(good)).sub == "rita"
        assert time.monotonic() - started < 0.5
        refused = await unknown
        assert all(isinstance(r, Problem) and r.status == 401 for r in refused)
        assert idp.requests == 2  # ten unknown kids, one re-read


async def test_defect7_unknown_kid_refreshes_are_rate_limited(tmp_path: Path) -> None:
    jwks = dev_issuer.ensure_keys(tmp_path).read_bytes()
    good = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path)
    idp = SlowJwks(jwks)
    async with idp as url:
        verifier = _http_verifier(url, min_interval=60)
        await verifier.verify(good)
        for i in range(30):
            with pytest.raises(Problem) as refused:
                await verifier.verify(_token(tmp_path, {}, kid=f"nope-{i}"))
            assert refused.value.status == 401
        assert idp.requests == 1


async def test_defect7_first_callers_share_one_fetch(tmp_path: Path) -> None:
    jwks = dev_issuer.ensure_keys(tmp_path).read_bytes()
    token = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path)
    idp = SlowJwks(jwks)
    idp.delay = 0.5
    async with idp as url:
        verifier = _http_verifier(url)
        results = await asyncio.gather(*(verifier.verify(token) for _ in range(10)))
        assert len(results) == 10
        assert idp.requests == 1


async def test_defect7_small_clock_skew_is_tolerated(tmp_path: Path) -> None:
    jwks_path = dev_issuer.ensure_keys(tmp_path)
    just_expired = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path,
                                   ttl_seconds=-10)
    assert (await _verifier(jwks_path).verify(just_expired)).sub == "rita"
    long_expired = dev_issuer.mint(role="reviewer", sub="rita", directory=tmp_path,
                                   ttl_seconds=-120)
    with pytest.raises(Problem) as refused:
        await _verifier(jwks_path).verify(long_expired)
    assert refused.value.status == 401


async def test_defect7_string_roles_claim_is_one_role(tmp_path: Path) -> None:
    jwks_path = dev_issuer.ensure_keys(tmp_path)
    principal = await _verifier(jwks_path).verify(_token(tmp_path, {"roles": "reviewer"}))
    assert principal.roles == frozenset({Role.REVIEWER})
    # "admin" spelt as a string must not become the roles "a", "d", "m", "i", "n" — nor
    # anything else than admin.
    principal = await _verifier(jwks_path).verify(
        _token(tmp_path, {"realm_access": {"roles": "admin"}}))
    assert principal.roles == frozenset({Role.ADMIN})


@pytest.mark.parametrize("claims", [
    {"realm_access": "supervisor"},
    {"realm_access": ["supervisor"]},
    {"realm_access": {"roles": {"supervisor": True}}},
    {"roles": 5},
    {"roles": [["reviewer"]]},
    {"sub": "a\u0000b"},
    {"sub": 42},
])
async def test_defect7_malformed_role_or_subject_claims_are_401(
    tmp_path: Path, claims: dict[str, object]
) -> None:
    jwks_path = dev_issuer.ensure_keys(tmp_path)
    with pytest.raises(Problem) as refused:
        await _verifier(jwks_path).verify(_token(tmp_path, claims))
    assert refused.value.status == 401


async def test_token_naming_an_ec_key_of_the_jwks_is_401_not_500(
    stack: Stack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Keycloak realms may publish ES256 (or EdDSA) signing keys beside the RSA key. A token
    with ``alg: RS256`` and the kid of such a key made PyJWT raise TypeError: a 500."""
    dev_dir = stack.config.var_dir / "dev-issuer"
    jwks = json.loads((dev_dir / "jwks.json").read_text())
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    jwks["keys"].append({**ec_jwk, "kid": "ec-signing", "use": "sig", "alg": "ES256"})
    jwks_path = tmp_path / "jwks.json"
    jwks_path.write_text(json.dumps(jwks))
    forged = ".".join((
        urlsafe_b64(json.dumps({"alg": "RS256", "kid": "ec-signing", "typ": "JWT"}).encode()),
        urlsafe_b64(json.dumps({"iss": "bwc-dev-issuer", "aud": "bwc", "sub": "mallory",
                         "exp": 4102444800, "roles": ["reviewer"]}).encode()),
        urlsafe_b64(b"\x00" * 64)))
    async with extra_service(stack, "catalog",
                             env={"BWC_AUTH_JWKS_URL": f"file://{jwks_path}"}) as catalog:
        genuine = dev_issuer.mint(role="reviewer", sub="rita", directory=dev_dir)
        ok = await http.get(f"{catalog.url}/api/v1/recordings?limit=1", headers=auth(genuine))
        assert ok.status_code == 200, ok.text
        response = await http.get(f"{catalog.url}/api/v1/recordings", headers=auth(forged))
    assert response.status_code == 401, response.text
