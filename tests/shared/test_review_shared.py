"""Regression tests from the review of the shared machinery (supervisor, consumer, auth, text,
catalogue): each one failed before its fix."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import auth, mint


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- catalogue: a malformed cursor is a 400 --------------------------------------------------

@pytest.mark.parametrize("rec_id", [5, ["x"], {"a": 1}])
async def test_cursor_with_a_non_string_id_is_400_not_500(
    stack: Stack, http: httpx.AsyncClient, rec_id: object
) -> None:
    cursor = _b64(json.dumps(["2026-01-01T00:00:00+00:00", rec_id]).encode())
    response = await http.get(f"{stack.url('catalog')}/api/v1/recordings?cursor={cursor}",
                              headers=auth(mint(stack, "reviewer", "rita")))
    assert response.status_code == 400, response.text
    assert "cursor" in response.json()["detail"]
