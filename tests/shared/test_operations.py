"""Every service answers /healthz, /readyz and /metrics, and serves its OpenAPI document."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bwc.devstack.services import SERVICES
from bwc.devstack.stack import Stack


@pytest.mark.parametrize("service", SERVICES)
async def test_operations_endpoints(stack: Stack, http: httpx.AsyncClient, service: str) -> None:
    base = stack.url(service)
    assert (await http.get(f"{base}/healthz")).json() == {"status": "ok"}
    ready = await http.get(f"{base}/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"].values()) == {"ok"}
    metrics = await http.get(f"{base}/metrics")
    assert "bwc_http_requests_total" in metrics.text
    if service == "catalog":  # the consumer connects in the background after start-up
        for _ in range(150):
            if "bwc_consumer_connected 1.0" in metrics.text:
                break
            await asyncio.sleep(0.1)
            metrics = await http.get(f"{base}/metrics")
        assert "bwc_consumer_connected 1.0" in metrics.text
    assert (await http.get(f"{base}/openapi.json")).status_code == 200
    response = await http.get(f"{base}/healthz", headers={"X-Request-ID": "trace-me"})
    assert response.headers["X-Request-ID"] == "trace-me"


@pytest.mark.parametrize("service", SERVICES)
async def test_every_api_operation_states_its_role(
    stack: Stack, http: httpx.AsyncClient, service: str
) -> None:
    spec = (await http.get(f"{stack.url(service)}/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            summary = operation.get("summary", "")
            assert "role" in summary or "no auth" in summary, f"{method} {path}: {summary!r}"


@pytest.mark.parametrize("service", SERVICES)
async def test_authenticated_operations_declare_the_bearer_scheme(
    stack: Stack, http: httpx.AsyncClient, service: str
) -> None:
    """Swagger UI's "Authorize" and generated clients learn from the document where the token
    goes; open operations (tus discovery, operations endpoints) declare none."""
    spec = (await http.get(f"{stack.url(service)}/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            open_operation = "no auth" in operation.get("summary", "")
            assert ("security" in operation) != open_operation, f"{method} {path}"
