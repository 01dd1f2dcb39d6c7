"""Topics get the replication and min.insync.replicas of the settings; a topic with less is
refused, never used silently (issue 11: acks=all against a replication-factor-1 topic)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bwc.devstack.stack import Stack
from bwc.kafka import TopicMisconfiguredError, ensure_topics, topic_violations
from bwc.settings import CommonSettings


def settings_for(stack: Stack, replication: int, min_insync: int) -> CommonSettings:
    return CommonSettings(kafka_bootstrap=stack.env["BWC_KAFKA_BOOTSTRAP"],
                          kafka_replication_factor=replication,
                          kafka_min_insync_replicas=min_insync)


def test_production_defaults_are_three_replicas_and_two_in_sync() -> None:
    settings = CommonSettings()
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)


def test_min_insync_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="BWC_KAFKA_MIN_INSYNC_REPLICAS=3 exceeds"):
        CommonSettings(kafka_replication_factor=2, kafka_min_insync_replicas=3)


async def test_missing_topic_is_created_and_accepted(stack: Stack) -> None:
    topic = f"test-topic-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings_for(stack, 1, 1), [topic])
    await ensure_topics(settings_for(stack, 1, 1), [topic])  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.env["BWC_KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 3


async def test_existing_under_replicated_topic_is_refused(stack: Stack) -> None:
    """The defect: a topic created earlier with replication factor 1 was accepted silently."""
    topic = f"test-topic-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.env["BWC_KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    with pytest.raises(TopicMisconfiguredError, match=f"{topic}: replication factor 1 < "
                       "BWC_KAFKA_REPLICATION_FACTOR=3"):
        await ensure_topics(settings_for(stack, 3, 2), [topic])


def test_a_lower_min_insync_is_a_violation() -> None:
    settings = CommonSettings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    assert topic_violations(settings, "t", [3, 3, 3], 2) == []
    assert topic_violations(settings, "t", [3, 3, 3], 1) == [
        "t: min.insync.replicas=1 < BWC_KAFKA_MIN_INSYNC_REPLICAS=2"]
    assert topic_violations(settings, "t", [3, 2, 3], None) == [
        "t: replication factor 2 < BWC_KAFKA_REPLICATION_FACTOR=3"]
