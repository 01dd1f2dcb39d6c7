"""Kafka clients configured the way every service needs them.

Producers use acks=all; the idempotent producer is a setting because the embedded Tansu broker
rejects it (DESIGN §5). Consumers never auto-commit: they commit after their database
transaction, which together with idempotent handlers gives at-least-once delivery.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from bwc.settings import CommonSettings

log = logging.getLogger(__name__)


def security_options(settings: CommonSettings) -> dict[str, Any]:
    """TLS and SASL options shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options


def make_producer(settings: CommonSettings, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=5,
        request_timeout_ms=15000,
        **security_options(settings),
    )


def make_consumer(
    settings: CommonSettings, *topics: str, group_id: str, client_id: str
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_uncommitted",
        max_poll_records=100,
        **security_options(settings),
    )


async def ensure_topics(settings: CommonSettings, topics: list[str]) -> None:
    """Create the topics if they do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                **security_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        # Another replica may create them between our check and our request.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(name=t, num_partitions=settings.kafka_topic_partitions,
                             replication_factor=1)
                    for t in missing
                ]
            )
        log.info("created topics", extra={"topics": missing})
    finally:
        await admin.close()
