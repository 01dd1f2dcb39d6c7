"""Who may call what on the review service (issue 7, deliverable 8; DESIGN §4): every endpoint
of the running service by every role. Admins, auditors, officers and devices never get media or
exports (R7, R8); only supervisors release holds (R4) and record judicial confirmations (R8).

The walk is driven by the service's own OpenAPI document, so an endpoint added without an entry
in ``EXPECTED`` fails here, and every operation's summary must name the roles that may call it.
Allowed roles send no input and must get past authorisation to the 400 about the missing input
(nothing is changed, nothing read); refused roles get 403 before their input is looked at.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from bwc.auth import Role
from bwc.devstack.stack import Stack
from tests.fixtures.clients import auth, mint

R, S = Role.REVIEWER, Role.SUPERVISOR
#: (method, path template) → the roles that may call it.
EXPECTED: dict[tuple[str, str], frozenset[Role]] = {
    ("get", "/api/v1/recordings/{recording_id}/media"): frozenset({R, S}),
    ("get", "/api/v1/recordings/{recording_id}/export"): frozenset({R, S}),
    ("post", "/api/v1/recordings/{recording_id}/holds"): frozenset({R}),
    ("post", "/api/v1/holds/{hold_id}/release"): frozenset({S}),
    ("post", "/api/v1/recordings/{recording_id}/review"): frozenset({R}),
    ("post", "/api/v1/recordings/{recording_id}/judicial-confirmation"): frozenset({S}),
}


async def _operations(http: httpx.AsyncClient, stack: Stack) -> dict[tuple[str, str], dict]:
    spec = (await http.get(f"{stack.url('review')}/openapi.json")).json()
    return {(method, path): op for path, item in spec["paths"].items()
            if path.startswith("/api/") for method, op in item.items()}


async def test_every_endpoint_is_in_the_matrix_and_names_its_roles(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    operations = await _operations(http, stack)
    assert set(operations) == set(EXPECTED)
    for key, op in operations.items():
        assert op.get("security"), f"{key} must declare the bearer token"
        named = {role for role in Role if role.value in op["summary"]}
        assert named == EXPECTED[key], f"{key}: summary {op['summary']!r} names {named}"


def _url(stack: Stack, path: str) -> str:
    return stack.url("review") + path.format(recording_id=uuid.uuid4(), hold_id=uuid.uuid4())


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
async def test_each_role_gets_exactly_what_the_matrix_says(
    stack: Stack, http: httpx.AsyncClient, method: str, path: str, role: Role
) -> None:
    response = await http.request(method.upper(), _url(stack, path),
                                  headers=auth(mint(stack, role.value, f"{role.value}-roles")))
    if role in EXPECTED[(method, path)]:
        # Past authorisation: the missing purpose or body is what is wrong.
        assert response.status_code == 400, (role, path, response.text)
    else:
        assert response.status_code == 403, (role, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
async def test_no_token_is_401(
    stack: Stack, http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method.upper(), _url(stack, path))
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
