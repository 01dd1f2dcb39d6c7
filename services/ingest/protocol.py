"""tus 1.0 wire details shared by the ingest handlers: versions, headers, header parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import URL, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bwc.problems import Problem
from services.ingest.metadata import MAX_METADATA_BYTES

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
#: Seconds a device is asked to wait before trying again (503, 423, 429).
RETRY_AFTER = "5"


class TusResumableMiddleware:
    """Every answer under ``prefix`` carries ``Tus-Resumable``, errors from auth included.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``, which passes every piece of a PATCH
    body through a memory stream of its own): it only touches the response's headers.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not URL(scope=scope).path.startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("Tus-Resumable", TUS_VERSION)
            await send(message)

        await self.app(scope, receive, send_with_version)


def install_tus_headers(app: FastAPI, prefix: str) -> None:
    app.add_middleware(TusResumableMiddleware, prefix=prefix)


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


#: Digits an integer header may have: 2**63 - 1 (bigint, the column type) has 19. Counting
#: digits first keeps ``int()`` away from 5,000-digit strings (Python refuses those, a 500).
MAX_INT_DIGITS = 19
BIGINT_MAX = 2**63 - 1


def parse_int_header(request: Request, name: str, *, maximum: int = BIGINT_MAX) -> int:
    """A non-negative integer header, at most ``maximum``; 400 (413 above ``maximum``)."""
    raw = request.headers.get(name)
    if raw is None:
        raise Problem(400, f"Missing {name}", f"the {name} header is required",
                      headers=tus_headers(), field=name)
    if not (raw.isascii() and raw.isdigit()):
        raise Problem(400, f"Invalid {name}", f"{name} must be a non-negative integer",
                      headers=tus_headers(), field=name)
    digits = raw.lstrip("0")
    if len(digits) > MAX_INT_DIGITS or int(digits or "0") > BIGINT_MAX:
        raise Problem(400, f"Invalid {name}", f"{name} must be at most {BIGINT_MAX}",
                      headers=tus_headers(), field=name)
    value = int(digits or "0")
    if value > maximum:
        raise Problem(413, "Upload too large", f"{name} {value} exceeds Tus-Max-Size {maximum}",
                      headers=tus_headers(), field=name)
    return value


def _header(name: str, description: str, schema: dict[str, Any], *,
            required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "description": description,
            "schema": schema}


_UINT = {"type": "string", "pattern": "^[0-9]{1,19}$"}
#: The tus request headers, as OpenAPI header parameters (FastAPI cannot see them: the
#: handlers read them with the parsers above, to answer in tus terms).
TUS_HEADERS: dict[str, dict[str, Any]] = {
    "Tus-Resumable": _header("Tus-Resumable", "tus protocol version",
                             {"type": "string", "enum": [TUS_VERSION]}, required=True),
    "Upload-Length": _header("Upload-Length", "size of the whole recording in bytes",
                             _UINT, required=True),
    "Upload-Metadata": _header(
        "Upload-Metadata", "comma-separated 'key base64(value)' pairs (DESIGN §4)",
        {"type": "string", "maxLength": MAX_METADATA_BYTES}, required=True),
    "Upload-Defer-Length": _header("Upload-Defer-Length", "not supported (400)",
                                   {"type": "string"}),
    "Upload-Offset": _header("Upload-Offset", "where this chunk starts", _UINT, required=True),
    "Upload-Checksum": _header("Upload-Checksum", "'<algorithm> <base64 digest>' of the chunk",
                               {"type": "string"}),
}


def tus_openapi(*headers: str, body: bool = False) -> dict[str, Any]:
    """``openapi_extra`` declaring a tus operation's headers (and chunk body)."""
    extra: dict[str, Any] = {"parameters": [TUS_HEADERS[h] for h in headers]}
    if body:
        extra["requestBody"] = {"required": True, "content": {
            OFFSET_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
    return extra
