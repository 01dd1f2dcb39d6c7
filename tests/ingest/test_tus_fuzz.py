"""Property-based fuzzing of the tus endpoints (issue 5, "Also"): random headers, offsets,
lengths, metadata encodings and truncated bodies. Whatever arrives, the answer is never a 5xx,
an error is a problem+json naming the problem, and an upload's offset stays within its length.

Seeded and bounded like the schema fuzz (``tests/fixtures/fuzz.py``).
"""

from __future__ import annotations

import base64
import hashlib
import socket
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bwc.devstack.stack import Stack
from tests.fixtures.clients import TUS, auth, encode_metadata, mint, recording_metadata
from tests.fixtures.fuzz import FUZZ_EXAMPLES, SEED

FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# Header values must be latin-1 without CR/LF for the client to send them at all.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=40)
integers = st.one_of(
    st.integers(min_value=0, max_value=2**70).map(str),
    st.integers(min_value=-10, max_value=-1).map(str),
    st.sampled_from(["", "0x10", "1e3", " 5", "٣", "9" * 5000, "0" * 30 + "7"]),
    header_text,
)
metadata_values = st.one_of(
    st.text(max_size=60),  # any Unicode, NUL and bidi controls included
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "video/mp4\n",
                     "true", "false", "TRUE", "", "51.2,7.1", "nan,nan", "91,0", "a" * 3000,
                     "a\x00b", "evil\u202egnp.mp4", "line\nbreak", "\u2066x\u2069"]),
)


def _encoded(value: str | bytes, mode: str) -> str:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    if mode == "base64":
        return base64.b64encode(raw).decode()
    if mode == "urlsafe":
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return raw.decode("latin-1", "replace").replace("\r", "").replace("\n", "")


@st.composite
def metadata_headers(draw: Any, device_id: str) -> str:
    """A valid Upload-Metadata with one or two values replaced, added or mis-encoded: one fault
    at a time gets past the checks before it, where a pile of faults would stop at the first."""
    meta: dict[str, str | bytes] = dict(recording_metadata(device_id))
    keys = [*sorted(meta), "officer_id", "ended_at", "location", "sha256", "x-extra"]
    encodings: dict[str, str] = {}
    for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2)):
        meta[key] = draw(st.one_of(metadata_values, metadata_values, st.binary(max_size=20)))
        encodings[key] = draw(st.sampled_from(["base64"] * 8 + ["urlsafe", "raw"]))
    pairs = [f"{k} {_encoded(v, encodings.get(k, 'base64'))}" for k, v in meta.items()]
    header = ",".join(draw(st.permutations(pairs)))
    return header.encode("latin-1", "replace").decode("latin-1")


def _send(method: str, url: str, **kwargs: Any) -> httpx.Response | None:
    """The request, or ``None`` when the client itself refuses a header (e.g. a leading space):
    such a request never reaches a server."""
    headers = {k: v.encode() for k, v in kwargs.pop("headers", {}).items()}  # raw UTF-8 bytes
    try:
        return httpx.request(method, url, timeout=30, headers=headers, **kwargs)
    except httpx.LocalProtocolError:
        return None


def _assert_sane(response: httpx.Response | None) -> None:
    if response is None:
        return
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["detail"]


@pytest.fixture(scope="module")
def fuzz_device(stack: Stack) -> tuple[str, dict[str, str]]:
    device_id = f"cam-tusfuzz-{uuid.uuid4().hex[:6]}"
    response = httpx.post(f"{stack.url('ingest')}/api/v1/devices", json={"device_id": device_id},
                          headers=auth(mint(stack, "admin", "admin-fuzz")))
    assert response.status_code == 201, response.text
    return device_id, auth(mint(stack, "device", device_id))


def test_tus_fuzz_creation(stack: Stack, fuzz_device: tuple[str, dict[str, str]]) -> None:
    device_id, token = fuzz_device
    files = f"{stack.url('ingest')}/files/"

    @seed(SEED)
    @settings(FUZZ, max_examples=4 * FUZZ_EXAMPLES)  # one cheap request per example
    @given(fault=st.sampled_from(["length", "version", "defer", "metadata", "metadata"]),
           length=integers, metadata=metadata_headers(device_id),
           version=st.sampled_from(["0.2.2", "", "1.0", "1.0.0 "]),
           defer=st.sampled_from(["1", "0", ""]))
    def create(fault: str, length: str, metadata: str, version: str, defer: str) -> None:
        """One fault per request, the rest valid, so each fault meets the check it tests."""
        headers = {**token, **TUS, "Upload-Length": "100", "Upload-Metadata": encode_metadata(
            recording_metadata(device_id))}
        if fault == "length":
            headers["Upload-Length"] = length
        elif fault == "version":
            headers["Tus-Resumable"] = version
        elif fault == "defer":
            headers["Upload-Defer-Length"] = defer
        else:
            headers["Upload-Metadata"] = metadata
        response = _send("POST", files, headers=headers)
        _assert_sane(response)
        if response is not None and response.status_code == 201:
            assert response.headers["Location"]

    create()


def _truncated_patch(stack: Stack, path: str, token: dict[str, str], offset: str,
                     announce: int, body: bytes) -> None:
    """Announce ``announce`` bytes, send ``body`` (maybe fewer), hang up."""
    port = int(stack.url("ingest").rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: {token['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
                      "Content-Type: application/offset+octet-stream\r\n"
                      f"Upload-Offset: {offset}\r\nContent-Length: {announce}\r\n\r\n").encode())
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)  # an answer, or the server closing: either is fine


def test_tus_fuzz_patch_sequences(stack: Stack, fuzz_device: tuple[str, dict[str, str]]) -> None:
    device_id, token = fuzz_device
    files = f"{stack.url('ingest')}/files/"

    chunk = st.tuples(
        st.one_of(st.integers(min_value=0, max_value=400).map(str), integers),  # Upload-Offset
        st.binary(max_size=300),  # body
        st.sampled_from(["exact", "exact", "truncated", "checksum", "bad-checksum",
                         "wrong-type"]),
    )

    @seed(SEED)
    @FUZZ
    @given(length=st.integers(min_value=1, max_value=300), chunks=st.lists(chunk, max_size=5))
    def sequence(length: int, chunks: list[tuple[str, bytes, str]]) -> None:
        created = httpx.post(files, timeout=30, headers={
            **token, **TUS, "Upload-Length": str(length),
            "Upload-Metadata": ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                                        for k, v in recording_metadata(device_id).items())})
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        for offset, body, how in chunks:
            if how == "truncated":
                _truncated_patch(stack, "/" + url.split("/", 3)[3], token, offset.strip() or "0",
                                 len(body) + 100, body)
                continue
            headers = {**token, **TUS, "Upload-Offset": offset,
                       "Content-Type": "application/offset+octet-stream"}
            if how == "wrong-type":
                headers["Content-Type"] = "application/json"
            if how in ("checksum", "bad-checksum"):
                digest = hashlib.sha256(body if how == "checksum" else body + b"!").digest()
                headers["Upload-Checksum"] = f"sha256 {base64.b64encode(digest).decode()}"
            _assert_sane(_send("PATCH", url, content=body, headers=headers))
        head = httpx.head(url, headers={**token, **TUS}, timeout=30)
        _assert_sane(head)
        if head.status_code == 200:
            assert 0 <= int(head.headers["Upload-Offset"]) <= length
        httpx.delete(url, headers={**token, **TUS}, timeout=30)

    sequence()


def test_tus_fuzz_unknown_ids_and_methods(
    stack: Stack, fuzz_device: tuple[str, dict[str, str]]
) -> None:
    _, token = fuzz_device
    files = f"{stack.url('ingest')}/files/"

    @seed(SEED)
    @FUZZ
    @given(upload_id=st.one_of(st.uuids().map(str), st.text(
               st.characters(min_codepoint=0x21, max_codepoint=0x7e, exclude_characters="/?#%"),
               min_size=1, max_size=40)),
           method=st.sampled_from(["HEAD", "PATCH", "DELETE", "OPTIONS", "GET", "PUT", "POST"]))
    def probe(upload_id: str, method: str) -> None:
        response = _send(method, files + upload_id, headers={
            **token, **TUS, "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream"})
        _assert_sane(response)
        if response is not None and response.status_code == 405:
            assert response.headers["Allow"]

    probe()
