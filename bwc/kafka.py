"""Kafka clients configured the way every service needs them.

Producers use acks=all; the idempotent producer is a setting because the embedded Tansu broker
rejects it (DESIGN §5). Consumers never auto-commit: they commit after their database
transaction, which together with idempotent handlers gives at-least-once delivery.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
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


class TopicMisconfiguredError(RuntimeError):
    """A topic the services need exists with less replication than the settings demand."""


#: Kafka's error code when a topic exists (another replica created it first).
_TOPIC_ALREADY_EXISTS = 36
_MIN_ISR = "min.insync.replicas"


def topic_violations(
    settings: CommonSettings, topic: str, replicas: list[int], min_insync: int | None
) -> list[str]:
    """What is wrong with one topic: fewer replicas (in any partition) or a lower
    ``min.insync.replicas`` than the settings demand. ``replicas`` has one count per partition;
    ``min_insync`` is None when the broker did not report it."""
    problems = []
    if replicas and min(replicas) < settings.kafka_replication_factor:
        problems.append(f"{topic}: replication factor {min(replicas)} < "
                        f"BWC_KAFKA_REPLICATION_FACTOR={settings.kafka_replication_factor}")
    if min_insync is not None and min_insync < settings.kafka_min_insync_replicas:
        problems.append(f"{topic}: {_MIN_ISR}={min_insync} < "
                        f"BWC_KAFKA_MIN_INSYNC_REPLICAS={settings.kafka_min_insync_replicas}")
    return problems


async def ensure_topics(settings: CommonSettings, topics: list[str]) -> None:
    """Create missing topics with the configured replication and ``min.insync.replicas``,
    then check every one of them: a topic with less is refused (logged and raised), never
    used silently, because acks=all would then not mean what production relies on and the
    replication factor of a topic cannot be raised later by the services."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                **security_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await _create(admin, settings, missing)
        problems = await _check(admin, settings, topics)
    finally:
        await admin.close()
    if problems:
        message = ("topics violate the replication settings (fix the KafkaTopic or the "
                   "settings; the services never lower them): " + "; ".join(problems))
        log.error(message, extra={"topics": topics})
        raise TopicMisconfiguredError(message)


async def _create(admin: AIOKafkaAdminClient, settings: CommonSettings, names: list[str]) -> None:
    response = await admin.create_topics([
        NewTopic(name=t, num_partitions=settings.kafka_topic_partitions,
                 replication_factor=settings.kafka_replication_factor,
                 topic_configs={_MIN_ISR: str(settings.kafka_min_insync_replicas)})
        for t in names
    ])
    errors = [e for e in response.to_object()["topic_errors"]
              # Another replica may create a topic between our check and our request.
              if e["error_code"] not in (0, _TOPIC_ALREADY_EXISTS)]
    if errors:
        message = "; ".join(f"{e['topic']}: {e['error_message'] or e['error_code']}"
                            for e in errors)
        log.error("could not create topics: %s", message)
        raise TopicMisconfiguredError(f"could not create topics: {message}")
    log.info("created topics", extra={"topics": names})


async def _check(admin: AIOKafkaAdminClient, settings: CommonSettings,
                 names: list[str]) -> list[str]:
    described = {t["topic"]: t for t in await admin.describe_topics(names)}
    min_isr = await _min_insync(admin, names)
    problems = []
    for name in names:
        partitions = described.get(name, {}).get("partitions", [])
        problems += topic_violations(settings, name, [len(p["replicas"]) for p in partitions],
                                     min_isr.get(name))
    return problems


async def _min_insync(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Each topic's effective ``min.insync.replicas``; a broker that cannot describe topic
    configs yields none (the replica count is still checked)."""
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name)
             for name in names])
    except KafkaError as exc:
        log.warning("broker cannot describe topic configs; %s not verified: %s", _MIN_ISR, exc)
        return {}
    found: dict[str, int] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == _MIN_ISR and entry["config_value"] is not None:
                    found[resource["resource_name"]] = int(entry["config_value"])
    return found
