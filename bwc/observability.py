"""Operations endpoints shared by all services: ``/healthz``, ``/readyz``, ``/metrics``.

Also the request-id middleware, which tags every log line and response with ``X-Request-ID``.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bwc.logs import request_id_var
from bwc.shutdown import Shutdown
from bwc.supervisor import Supervisor


@dataclass(frozen=True)
class ReadinessCheck:
    """A dependency probe; a failing ``required`` one makes ``/readyz`` answer 503, another
    is only reported."""

    probe: Callable[[], Awaitable[None]]
    required: bool = True


#: A caller's ``X-Request-ID`` is kept (a gateway's id then correlates its logs with ours and
#: with the audit entries, ``bwc.audit``) when it is 1-200 visible ASCII characters; anything
#: else — too long for an audit entry, spaces, control characters that would forge log
#: lines — is replaced by a fresh id, which the response names.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")


def _request_id(offered: str) -> str:
    return offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


REQUESTS = Counter("bwc_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("bwc_http_request_seconds", "HTTP request latency", ["method", "route"])


class RequestContextMiddleware:
    """Request id (``X-Request-ID`` in, the same or a fresh one out, on the log lines and audit
    entries of the request) and the request metrics, as a plain ASGI middleware.

    Not Starlette's ``BaseHTTPMiddleware``: that runs the app in a task of its own and passes
    every piece of the request body and of the response through memory streams, which cost
    each PATCH of a device measurable time per piece. Metrics and the header are taken when
    the response starts, as before: latency is the time to the response's status line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(Headers(scope=scope).get("x-request-id", ""))
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                method = scope["method"]
                REQUESTS.labels(method, path, str(message["status"])).inc()
                LATENCY.labels(method, path).observe(time.perf_counter() - started)
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def install_request_middleware(app: FastAPI) -> None:
    app.add_middleware(RequestContextMiddleware)


def operations_router(
    checks: dict[str, ReadinessCheck], supervisor: Supervisor,
    shutting_down: Shutdown | None = None,
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness (no auth)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: required dependencies reachable and no "
                "background task crashed (no auth)",
                responses={503: {"description": "Not ready: the body's `reasons` say why"}})
    async def readyz() -> JSONResponse:
        async def run(check: ReadinessCheck) -> str:
            try:
                await asyncio.wait_for(check.probe(), timeout=3)
            except Exception as exc:
                return f"error: {exc!r}"[:300]
            return "ok"

        names = list(checks)
        results = await asyncio.gather(*(run(checks[n]) for n in names))
        report = dict(zip(names, results, strict=True))
        failing = [n for n in names if checks[n].required and report[n] != "ok"]
        crashed = supervisor.crashed()
        stopping = shutting_down is not None and shutting_down.is_set()
        ready = not failing and not crashed and not stopping
        body: dict[str, object] = {
            "status": "ready" if ready else "not ready", "checks": report,
            "required": [n for n in names if checks[n].required],
            "tasks": supervisor.report(),
        }
        if not ready:
            body["reasons"] = ([f"check {n} failed" for n in failing]
                               + [f"task {t} crashed" for t in crashed]
                               + (["shutting down"] if stopping else []))
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics (no auth)", response_class=Response,
                responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
