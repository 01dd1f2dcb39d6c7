"""tus 1.0 wire details shared by the ingest handlers: versions, headers, header parsing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import FastAPI, Request, Response

from bwc.problems import Problem

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


def install_tus_headers(app: FastAPI, prefix: str) -> None:
    """Every answer under ``prefix`` carries ``Tus-Resumable``, errors from auth included."""

    @app.middleware("http")
    async def add_tus_resumable(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(prefix):
            response.headers.setdefault("Tus-Resumable", TUS_VERSION)
        return response


def tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def require_tus_version(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise Problem(412, "Unsupported tus version",
                      f"send 'Tus-Resumable: {TUS_VERSION}' (got {version!r})",
                      headers={"Tus-Version": TUS_VERSION})


def http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def parse_int_header(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise Problem(400, f"Missing {name}", f"the {name} header is required",
                      headers=tus_headers())
    if not (raw.isascii() and raw.isdigit()):
        raise Problem(400, f"Invalid {name}", f"{name} must be a non-negative integer",
                      headers=tus_headers())
    return int(raw)
