"""The route class every API router uses: authentication first, problems declared.

FastAPI parses and validates the request body before it runs any dependency, so an
unauthenticated caller with a malformed body learnt "400: your JSON is wrong" instead of
"401: who are you?" — the API answered strangers about its input. ``RoleAwareRoute`` verifies
the token and checks the roles its ``require_roles`` dependency names before anything else.

It also makes the OpenAPI document tell the truth about errors: every operation declares the
problem+json answers it can give (401/403/503 when it needs a token, 400 when it takes input),
and handlers add theirs with ``problem_responses``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from bwc.auth import Role, check_roles, current_principal
from bwc.problems import PROBLEM_JSON

#: RFC 9457 problem details as this suite sends them (``bwc.problems.Problem.body``).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string", "description": "the input the problem is about"},
        "errors": {"type": "array", "items": {
            "type": "object", "properties": {"field": {"type": "string"},
                                             "message": {"type": "string"}}}},
    },
    "additionalProperties": True,
}

_REASONS = {460: "Checksum Mismatch (tus)"}

#: The OpenAPI security scheme: an OIDC access token (a JWT) as a bearer token.
BEARER = "bearer"
BEARER_SCHEME: dict[str, Any] = {
    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    "description": "An access token of the IdP (locally: `bwc token --role ROLE --sub NAME`)",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json answers with these statuses."""
    return {
        status: {
            "description": _REASONS.get(status) or HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def _auth_of(dependant: Dependant) -> frozenset[Role] | None:
    """The roles a route requires (empty: any valid token), or ``None`` if it is open."""
    for dep in dependant.dependencies:
        roles: frozenset[Role] | None = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return roles
        if dep.call is current_principal:
            return frozenset()
        nested = _auth_of(dep)
        if nested is not None:
            return nested
    return None


def _takes_input(dependant: Dependant) -> bool:
    return bool(dependant.query_params or dependant.path_params or dependant.header_params
                or dependant.body_params or dependant.cookie_params
                or any(_takes_input(d) for d in dependant.dependencies))


class RoleAwareRoute(APIRoute):
    """Authenticates and checks roles before the body is parsed; declares its problems."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        declared = [400] if _takes_input(self.dependant) else []
        if _auth_of(self.dependant) is not None:
            declared += [401, 403, 503]  # 503: the identity provider cannot be reached
            # Swagger UI's "Authorize" and generated clients send the token from this.
            self.openapi_extra = {**(self.openapi_extra or {}), "security": [{BEARER: []}]}
        for status, entry in problem_responses(*declared).items():
            self.responses.setdefault(status, entry)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        roles = _auth_of(self.dependant)
        if roles is None:
            return handler

        async def authenticate_first(request: Request) -> Response:
            principal = await current_principal(request)
            if roles:
                check_roles(principal, roles)
            return await handler(request)

        return authenticate_first


def api_router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes are ``RoleAwareRoute`` (every service router is one)."""
    return APIRouter(route_class=RoleAwareRoute, **kwargs)


def install_routing(app: FastAPI) -> None:
    """Refuse to start with an authenticated route that would parse its body first, and put
    the ``Problem`` schema and the bearer security scheme the routes refer to into the OpenAPI
    document."""
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if (isinstance(route, APIRoute) and not isinstance(route, RoleAwareRoute)
                and _auth_of(route.dependant) is not None):
            raise RuntimeError(f"{route.path} needs a token but is not a RoleAwareRoute; "
                               "create its router with bwc.routing.api_router")
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        components = spec.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        components.setdefault("securitySchemes", {})[BEARER] = BEARER_SCHEME
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
