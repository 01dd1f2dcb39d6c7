"""How review reads a recording's audit trail from the catalogue (R7, R8), without a stack: the
catalogue's side is an ``httpx.MockTransport`` (the client's transport seam). Follows
``next_cursor`` to the last page; re-reads the token file when it is rotated; every failure
is ``CatalogUnavailable`` (the export's 503). The real catalogue: tests/review/test_export.py.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bwc.audit_chain import canonical, link_hash
from services.review.catalog_client import CatalogClient, CatalogUnavailable

RID = uuid.uuid4()
Handler = Callable[[httpx.Request], httpx.Response]


def _item(seq: int) -> dict[str, object]:
    body = canonical({"id": f"e{seq}", "data": {"recording_id": str(RID)}})
    prev = bytes(32)
    return {"seq": seq, "prev_hash": prev.hex(), "hash": link_hash(prev, body).hex(),
            "canonical": body.decode()}


def _pages(seen: list[httpx.Request]) -> Handler:
    """Entries 1 and 2 on the first page, 7 on the second."""
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params.get("cursor") is None:
            return httpx.Response(200, json={"items": [_item(1), _item(2)], "next_cursor": "c1"})
        return httpx.Response(200, json={"items": [_item(7)], "next_cursor": None})
    return handle


def _client(token_file: Path | None, handler: Handler) -> CatalogClient:
    return CatalogClient("http://catalog.test", str(token_file) if token_file else None,
                         transport=httpx.MockTransport(handler))


async def test_every_page_is_read_with_the_token_from_the_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first-token\n")
    seen: list[httpx.Request] = []
    client = _client(token, _pages(seen))
    trail = await client.audit_trail(RID)
    assert (trail.entries, trail.first_seq, trail.last_seq) == (3, 1, 7)
    lines = b"".join(trail.pieces()).decode().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 7]
    assert [(r.url.params["recording_id"], r.url.params["limit"], r.url.params.get("cursor"))
            for r in seen] == [(str(RID), "1000", None), (str(RID), "1000", "c1")]
    assert {r.headers["Authorization"] for r in seen} == {"Bearer first-token"}
    trail.close()

    # A rotated Secret: a new file swapped in (another inode, mtime, size).
    rotated = tmp_path / "token.new"
    rotated.write_text("second-token-after-rotation\n")
    os.replace(rotated, token)
    seen.clear()
    (await client.audit_trail(RID)).close()
    assert {r.headers["Authorization"] for r in seen} == {"Bearer second-token-after-rotation"}
    await client.aclose()


def _answer(response: httpx.Response) -> Handler:
    return lambda request: response


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(("handler", "message"), [
    (_unreachable, "cannot be reached"),
    (_answer(httpx.Response(401, json={"title": "expired"})), "HTTP 401"),
    (_answer(httpx.Response(500, text="boom")), "HTTP 500"),
    (_answer(httpx.Response(200, text="<html>")), "not JSON"),
    (_answer(httpx.Response(200, json={"items": [{"seq": 1}], "next_cursor": None})),
     "not a page of audit entries"),
])
async def test_a_catalogue_that_fails_is_unavailable(
    tmp_path: Path, handler: Handler, message: str
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    client = _client(token, handler)
    with pytest.raises(CatalogUnavailable, match=message):
        await client.audit_trail(RID)
    await client.aclose()


@pytest.mark.parametrize(("content", "message"), [
    (None, "no token for the catalogue is configured"),
    ("", "is empty"),
    ("missing", "cannot be read"),
])
async def test_no_usable_token_is_unavailable(
    tmp_path: Path, content: str | None, message: str
) -> None:
    token: Path | None = None
    if content is not None:
        token = tmp_path / "token"
        if content != "missing":
            token.write_text(content)
    client = _client(token, _pages([]))
    with pytest.raises(CatalogUnavailable, match=message):
        await client.audit_trail(RID)
    await client.aclose()
