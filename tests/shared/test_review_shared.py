"""Regression tests from the review of the shared machinery (supervisor, consumer, auth, text,
catalogue): each one failed before its fix."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import types
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from bwc import dev_issuer
from bwc.consumer import CONSUMER_MIGRATIONS, EventConsumer
from bwc.db import create_pool, migrate
from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, RecordingIngestedV1
from bwc.kafka import ensure_topics
from bwc.settings import CommonSettings
from bwc.supervisor import Supervisor
from bwc.text import IDENTIFIER, SHORT_TEXT
from tests.fixtures.clients import auth, mint
from tests.fixtures.services import extra_service


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


# -- auth: a token naming a non-RSA key of the JWKS is a 401 --------------------------------

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
        _b64(json.dumps({"alg": "RS256", "kid": "ec-signing", "typ": "JWT"}).encode()),
        _b64(json.dumps({"iss": "bwc-dev-issuer", "aud": "bwc", "sub": "mallory",
                         "exp": 4102444800, "roles": ["reviewer"]}).encode()),
        _b64(b"\x00" * 64)))
    async with extra_service(stack, "catalog",
                             env={"BWC_AUTH_JWKS_URL": f"file://{jwks_path}"}) as catalog:
        genuine = dev_issuer.mint(role="reviewer", sub="rita", directory=dev_dir)
        ok = await http.get(f"{catalog.url}/api/v1/recordings?limit=1", headers=auth(genuine))
        assert ok.status_code == 200, ok.text
        response = await http.get(f"{catalog.url}/api/v1/recordings", headers=auth(forged))
    assert response.status_code == 401, response.text


# -- supervisor: a CancelledError the task did not ask for does not end it for good ---------

async def test_a_stray_cancelled_error_does_not_end_a_task_for_good() -> None:
    """A task that awaits a future someone else cancelled (a library closing a connection)
    gets CancelledError without being cancelled itself. The supervisor took that for its own
    stop: the task ended silently and /readyz kept reporting it `running`."""
    runs = 0

    async def victim() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # raises CancelledError into this task
        await asyncio.Event().wait()

    supervisor = Supervisor(initial_backoff=0.05)
    supervisor.start("victim", victim)
    try:
        for _ in range(100):
            if runs >= 2:
                break
            await asyncio.sleep(0.02)
        assert runs == 2, "the task was not restarted"
        assert supervisor.report()["victim"]["restarts"] == 1
    finally:
        await supervisor.stop()


# -- text: a "one line" text has no line breaks ----------------------------------------------

@pytest.mark.parametrize("char", ["\u2028", "\u2029"])
def test_short_text_refuses_unicode_line_breaks(char: str) -> None:
    with pytest.raises(ValueError, match="U\\+202"):
        SHORT_TEXT.check(f"clip{char}name.mp4")


def test_identifier_refuses_invisible_format_characters() -> None:
    """Two officer ids that look the same must be the same: an invisible character makes an
    officer's recordings disappear from the officer's own list."""
    for char in ("\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad"):
        with pytest.raises(ValueError):
            IDENTIFIER.check(f"officer-7{char}")
        assert re.fullmatch(IDENTIFIER.json_pattern[1:-1], f"officer-7{char}") is None
    assert IDENTIFIER.check("officer-müller-7") == "officer-müller-7"
    assert SHORT_TEXT.check("Überfall am Markt, Zeuge\u200d.mp4")  # a joiner in free text


# -- consumer: stopped mid-batch, it commits what it applied ---------------------------------

async def test_a_consumer_stopped_mid_batch_commits_what_it_applied(stack: Stack) -> None:
    """tests/resilience/test_graceful_shutdown.py cannot see this: its consumer has committed
    every batch long before SIGTERM (the test passes with the commit on stop removed). Here the
    consumer is cancelled, as Supervisor.stop does, while the second event of a batch is in its
    handler: the first one's offset must be committed, the second's not."""
    topic = types.SimpleNamespace(value=f"review-test-{uuid.uuid4().hex[:8]}")
    schema = f"review_test_{uuid.uuid4().hex[:8]}"
    settings = CommonSettings(kafka_bootstrap=stack.env["BWC_KAFKA_BOOTSTRAP"],
                              kafka_replication_factor=1, kafka_min_insync_replicas=1)
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=3)
    blocked, applied = asyncio.Event(), []

    async def handler(_: object, event: CloudEvent) -> None:
        applied.append(event.id)
        if len(applied) == 2:
            blocked.set()
            await asyncio.Event().wait()  # shutdown arrives while this one is applied

    try:
        await migrate(pool, schema=schema, sources=[CONSUMER_MIGRATIONS])
        await ensure_topics(settings, [topic.value])
        now = datetime.now(UTC)
        events = [CloudEvent.wrap(source="/tests", subject=str(rid), data=RecordingIngestedV1(
            recording_id=rid, device_id="cam-review", officer_id=None,
            recorded_at=now - timedelta(hours=1), ended_at=None, uploaded_at=now, size_bytes=1,
            sha256="e" * 64, content_type="video/mp4", filename=None, trigger_reason="test",
            announced=True, imminent_danger=False, in_home=False, location=None,
            bucket="recordings", object_key=f"recordings/{rid}", object_version_id=None,
            delete_after=now + timedelta(days=1))) for rid in (uuid.uuid4(), uuid.uuid4())]
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sent = [await producer.send_and_wait(topic.value, key=b"k",
                                                 value=json.dumps(e.model_dump(mode="json"))
                                                 .encode()) for e in events]
        finally:
            await producer.stop()
        group = f"review-test-{uuid.uuid4().hex[:8]}"
        consumer = EventConsumer(pool, settings, schema=schema, topics=[topic],  # type: ignore[list-item]
                                 group_id=group, client_id="test",
                                 handlers={"recording.ingested": handler})
        running = asyncio.create_task(consumer.run())
        await asyncio.wait_for(blocked.wait(), timeout=60)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        assert applied == [events[0].id, events[1].id]
        probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                 enable_auto_commit=False)
        await probe.start()
        try:
            committed = await probe.committed(TopicPartition(topic.value, sent[0].partition))
        finally:
            await probe.stop()
        assert committed == sent[0].offset + 1, committed
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()
