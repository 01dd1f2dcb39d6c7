"""Kafka TLS/SASL options reach every client (R6: TLS-ready everywhere)."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from bwc.kafka import make_consumer, make_producer, security_options
from bwc.settings import CommonSettings


def test_plaintext_by_default() -> None:
    assert security_options(CommonSettings()) == {"security_protocol": "PLAINTEXT"}


async def test_sasl_ssl_builds_tls_context_and_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BWC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BWC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BWC_KAFKA_SASL_USERNAME", "bwc-ingest")
    monkeypatch.setenv("BWC_KAFKA_SASL_PASSWORD", "secret")
    settings = CommonSettings()
    options = security_options(settings)
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    producer = make_producer(settings, client_id="t")
    assert producer.client._security_protocol == "SASL_SSL"
    consumer = make_consumer(settings, "t", group_id="g", client_id="t")
    assert consumer._client._sasl_mechanism == "SCRAM-SHA-512"


def test_sasl_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWC_KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(ValidationError, match="BWC_KAFKA_SASL_USERNAME"):
        CommonSettings()
