"""The projection of every recordings.v1 type into the status machine (services/catalog/
states.py), against real Postgres: each transition, duplicates, and each out-of-order case
(events from different producers may overtake ``recording.ingested``)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from bwc.consumer import EventConsumer
from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, DeletionReason, HoldReason
from services.catalog.projection_purge import purge_once
from services.catalog.states import TRANSITIONS, Change, RecordingStatus
from tests.fixtures.catalog import catalog_database, catalog_settings, deliver, direct_consumer
from tests.fixtures.events import (
    deleted_event,
    hold_placed_event,
    hold_released_event,
    ingested_event,
    reviewed_event,
)

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    async with catalog_database(stack) as pool:
        yield pool


@pytest.fixture(scope="module")
def consumer(pool: asyncpg.Pool, stack: Stack) -> EventConsumer:
    return direct_consumer(pool, catalog_settings(stack))


def ingested(rid: uuid.UUID, **fields: Any) -> CloudEvent:
    values: dict[str, Any] = dict(
        recorded_at=at(0), ended_at=at(2), uploaded_at=at(10), filename="clip-0815.mp4",
        location="51.2277,6.7735", trigger_reason="man threatens staff with a bottle",
        officer_id="officer-7", size_bytes=1234, in_home=True,
        delete_after=at(0) + timedelta(days=14))
    return ingested_event(rid, **{**values, **fields})


async def recording(pool: asyncpg.Pool, rid: uuid.UUID) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM catalog.recordings WHERE id = $1", rid)
    assert row is not None
    return dict(row)


async def status(pool: asyncpg.Pool, rid: uuid.UUID) -> str:
    value: str = await pool.fetchval("SELECT status FROM catalog.recordings WHERE id = $1", rid)
    return value


async def holds(pool: asyncpg.Pool, rid: uuid.UUID) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(
        "SELECT * FROM catalog.holds WHERE recording_id = $1 ORDER BY placed_at", rid)]


async def pending(pool: asyncpg.Pool, rid: uuid.UUID) -> list[str]:
    return [r["type"] for r in await pool.fetch(
        "SELECT type FROM catalog.pending_events WHERE recording_id = $1"
        " ORDER BY occurred_at", rid)]


# -- the transitions ----------------------------------------------------------------------------


async def test_ingested_starts_pending_review_with_event_times_only(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid = uuid.uuid4()
    await deliver(consumer, ingested(rid))
    row = await recording(pool, rid)
    assert row["status"] == "pending_review"
    assert row["updated_at"] == at(10)  # the upload time, not the time of applying
    assert row["first_reviewed_at"] is None and row["deleted_at"] is None


async def test_review_makes_a_pending_recording_reviewed_and_keeps_no_note(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid = uuid.uuid4()
    await deliver(consumer, ingested(rid),
                  reviewed_event(rid, reviewed_at=at(40), note="woman with a red coat"),
                  reviewed_event(rid, reviewed_at=at(30), reviewer="rolf"))
    row = await recording(pool, rid)
    assert row["status"] == "reviewed"
    assert row["first_reviewed_at"] == at(30)  # R9: the earliest, whatever arrived first
    assert row["updated_at"] == at(40)
    reviews = await pool.fetch(
        "SELECT reviewer, reviewed_at FROM catalog.reviews WHERE recording_id = $1"
        " ORDER BY reviewed_at", rid)
    assert [(r["reviewer"], r["reviewed_at"]) for r in reviews] == [("rolf", at(30)),
                                                                   ("rita", at(40))]
    dump = await pool.fetchval("SELECT string_agg(r::text, '') FROM catalog.reviews r")
    assert "red coat" not in dump


async def test_holds_held_until_the_last_release_then_released_then_held_again(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid, a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await deliver(consumer, ingested(rid), hold_placed_event(rid, a, placed_at=at(20)))
    assert await status(pool, rid) == "held"
    await deliver(consumer, hold_placed_event(rid, b, placed_at=at(21),
                                              reason=HoldReason.CRIMINAL))
    await deliver(consumer, hold_released_event(rid, a, released_at=at(30)))
    assert await status(pool, rid) == "held"  # R3: b still stands
    await deliver(consumer, hold_released_event(rid, b, released_at=at(31)))
    assert await status(pool, rid) == "released"  # R4: every hold released
    await deliver(consumer, hold_placed_event(rid, c, placed_at=at(50)))
    assert await status(pool, rid) == "held"
    shown = await holds(pool, rid)
    assert [(h["id"], h["reason"], h["released_by"], h["released_at"]) for h in shown] == [
        (a, "owi", "sam", at(30)), (b, "criminal", "sam", at(31)), (c, "owi", None, None)]
    assert shown[0]["case_reference"] == "OWi 12/2026"
    assert shown[0]["release_justification"] == "proceedings closed"


async def test_a_review_never_lifts_a_hold_and_a_hold_overrides_a_review(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    held, released, reviewed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    hold = uuid.uuid4()
    await deliver(consumer, ingested(held), hold_placed_event(held, placed_at=at(20)),
                  reviewed_event(held, reviewed_at=at(25)))
    assert await status(pool, held) == "held"
    assert (await recording(pool, held))["first_reviewed_at"] == at(25)
    await deliver(consumer, ingested(released), hold_placed_event(released, hold, placed_at=at(20)),
                  hold_released_event(released, hold, released_at=at(21)),
                  reviewed_event(released, reviewed_at=at(25)))
    assert await status(pool, released) == "released"
    await deliver(consumer, ingested(reviewed), reviewed_event(reviewed, reviewed_at=at(15)),
                  hold_placed_event(reviewed, placed_at=at(20)))
    assert await status(pool, reviewed) == "held"


async def test_deletion_erases_the_content_and_keeps_the_deletion_record(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    """R5: what remains after deletion, field by field (docs/catalog.md)."""
    rid, hold = uuid.uuid4(), uuid.uuid4()
    await deliver(consumer, ingested(rid), reviewed_event(rid, reviewed_at=at(15)),
                  hold_placed_event(rid, hold, placed_at=at(20), reason=HoldReason.DANGER),
                  hold_released_event(rid, hold, released_at=at(30)))
    before = await recording(pool, rid)
    await deliver(consumer, deleted_event(rid, deleted_at=at(60),
                                          reason=DeletionReason.HOLD_RELEASED_AFTER_DEADLINE))
    after = await recording(pool, rid)
    for erased in ("filename", "location", "trigger_reason", "content_type", "bucket",
                   "object_key", "object_version_id"):
        assert before[erased] is not None or erased == "object_version_id"
        assert after[erased] is None, erased
    for kept in ("device_id", "officer_id", "recorded_at", "ended_at", "uploaded_at",
                 "size_bytes", "sha256", "announced", "imminent_danger", "in_home",
                 "delete_after", "first_reviewed_at"):
        assert after[kept] == before[kept], kept
    assert (after["status"], after["deleted_at"], after["deletion_reason"]) == (
        "deleted", at(60), "hold_released_after_deadline")
    assert after["updated_at"] == at(60)
    [kept_hold] = await holds(pool, rid)
    assert (kept_hold["reason"], kept_hold["placed_by"], kept_hold["placed_at"],
            kept_hold["released_by"], kept_hold["released_at"]) == (
        "danger", "rita", at(20), "sam", at(30))
    assert kept_hold["case_reference"] is None and kept_hold["justification"] is None
    assert kept_hold["release_justification"] is None
    row_text = await pool.fetchval(
        "SELECT r::text || coalesce(string_agg(h::text, ''), '') FROM catalog.recordings r"
        " LEFT JOIN catalog.holds h ON h.recording_id = r.id WHERE r.id = $1 GROUP BY r.*", rid)
    for content in ("clip-0815", "51.2277", "bottle", "OWi 12/2026", "assault", "proceedings"):
        assert content not in row_text


async def test_deleted_is_terminal_and_later_events_bring_nothing_back(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid, hold = uuid.uuid4(), uuid.uuid4()
    await deliver(consumer, ingested(rid), deleted_event(rid, deleted_at=at(60)),
                  hold_placed_event(rid, hold, placed_at=at(70)),
                  reviewed_event(rid, reviewed_at=at(71)),
                  ingested(rid),  # republished under a new event id
                  deleted_event(rid, deleted_at=at(80), reason=DeletionReason.SAFETY_NET))
    row = await recording(pool, rid)
    assert (row["status"], row["filename"], row["trigger_reason"]) == ("deleted", None, None)
    assert (row["deleted_at"], row["deletion_reason"]) == (at(60), "deadline")  # the first
    [late] = await holds(pool, rid)  # recorded, without its texts (R5)
    assert (late["id"], late["reason"], late["case_reference"], late["justification"]) == (
        hold, "owi", None, None)
    await deliver(consumer, hold_released_event(rid, hold, released_at=at(90)))
    [late] = await holds(pool, rid)
    assert (late["released_by"], late["release_justification"]) == ("sam", None)
    assert await status(pool, rid) == "deleted"


async def test_a_duplicate_changes_nothing(pool: asyncpg.Pool, consumer: EventConsumer) -> None:
    rid = uuid.uuid4()
    events = [ingested(rid), reviewed_event(rid, reviewed_at=at(15)),
              hold_placed_event(rid, placed_at=at(20))]
    await deliver(consumer, *events)
    before = (await recording(pool, rid), await holds(pool, rid))
    await deliver(consumer, *events, *reversed(events))
    assert (await recording(pool, rid), await holds(pool, rid)) == before
    assert await pool.fetchval("SELECT count(*) FROM catalog.reviews WHERE recording_id = $1",
                               rid) == 1


# -- out of order -------------------------------------------------------------------------------


@pytest.mark.parametrize(("early", "expected"), [
    ("review", "reviewed"), ("hold", "held"), ("hold+release", "released"),
    ("deleted", "deleted"), ("hold+deleted", "deleted"),
])
async def test_an_event_before_its_recording_is_kept_and_applied_when_it_arrives(
    pool: asyncpg.Pool, consumer: EventConsumer, early: str, expected: str
) -> None:
    rid, hold = uuid.uuid4(), uuid.uuid4()
    events = {
        "review": reviewed_event(rid, reviewed_at=at(15)),
        "hold": hold_placed_event(rid, hold, placed_at=at(20)),
        "release": hold_released_event(rid, hold, released_at=at(30)),
        "deleted": deleted_event(rid, deleted_at=at(60)),
    }
    # Newest first: the order of application is the order of occurrence, not of arrival.
    waiting = [events[name] for name in reversed(early.split("+"))]
    await deliver(consumer, *waiting)
    assert await pending(pool, rid) == [e.type for e in reversed(waiting)]  # by occurrence
    assert await pool.fetchval("SELECT count(*) FROM catalog.recordings WHERE id = $1", rid) == 0
    await deliver(consumer, ingested(rid))
    assert await status(pool, rid) == expected
    assert await pending(pool, rid) == []
    if expected == "deleted":
        row = await recording(pool, rid)
        assert (row["filename"], row["location"], row["trigger_reason"]) == (None, None, None)
        assert all(h["case_reference"] is None for h in await holds(pool, rid))


async def test_a_release_before_its_hold_waits_for_the_hold(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid, hold = uuid.uuid4(), uuid.uuid4()
    await deliver(consumer, ingested(rid), hold_released_event(rid, hold, released_at=at(30)))
    assert await pending(pool, rid) == ["recording.hold_released"]
    assert await status(pool, rid) == "pending_review"
    await deliver(consumer, hold_placed_event(rid, hold, placed_at=at(20)))
    assert await status(pool, rid) == "released"
    assert await pending(pool, rid) == []
    assert (await holds(pool, rid))[0]["released_at"] == at(30)


async def test_a_waiting_review_keeps_no_note(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid = uuid.uuid4()
    await deliver(consumer, reviewed_event(rid, reviewed_at=at(15), note="red coat"))
    data = await pool.fetchval("SELECT data::text FROM catalog.pending_events"
                               " WHERE recording_id = $1", rid)
    assert "rita" in data and "red coat" not in data


async def test_any_order_and_any_duplicates_end_in_the_same_rows(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    """The catalogue is a function of the set of events applied (services/catalog/
    projection.py): 40 shuffles with duplicates of one recording's life end in equal rows."""
    rng = random.Random(6)
    results = set()
    for _ in range(40):
        rid, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        life = [ingested(rid), reviewed_event(rid, reviewed_at=at(15)),
                hold_placed_event(rid, a, placed_at=at(20)),
                hold_placed_event(rid, b, placed_at=at(21), reason=HoldReason.CRIMINAL),
                hold_released_event(rid, a, released_at=at(30)),
                hold_released_event(rid, b, released_at=at(31)),
                reviewed_event(rid, reviewed_at=at(40), reviewer="rolf"),
                deleted_event(rid, deleted_at=at(60))]
        if rng.random() < 0.3:
            life = life[:-1]  # not deleted yet
        shuffled = life + rng.sample(life, 3)
        rng.shuffle(shuffled)
        await deliver(consumer, *shuffled)
        row = await recording(pool, rid)
        row.pop("id"), row.pop("object_key")
        rows = [tuple(sorted((k, str(v)) for k, v in row.items()))]
        for h in await holds(pool, rid):
            rows.append(tuple(sorted((k, str(v)) for k, v in h.items()
                                     if k not in ("id", "recording_id"))))
        rows += [tuple(r) for r in await pool.fetch(
            "SELECT reviewer, reviewed_at FROM catalog.reviews WHERE recording_id = $1"
            " ORDER BY reviewed_at", rid)]
        assert await pending(pool, rid) == []
        results.add(tuple(rows))
    assert len(results) == 2  # deleted, and released-not-yet-deleted


# -- bounds and the table -----------------------------------------------------------------------


async def test_waiting_events_are_purged_after_the_retention_period(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    """R5: an event whose recording never arrives is removed at its occurrence time plus the
    retention period (by then the recording is past its deadline)."""
    old, recent = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await deliver(consumer, hold_placed_event(old, placed_at=now - timedelta(days=14, hours=1)),
                  hold_placed_event(recent, placed_at=now - timedelta(days=13)))
    assert await purge_once(pool, now=now) >= 1
    assert await pending(pool, old) == []
    assert await pending(pool, recent) == ["recording.hold_placed"]
    kept_until = await pool.fetchval(
        "SELECT kept_until FROM catalog.pending_events WHERE recording_id = $1", recent)
    assert kept_until == now - timedelta(days=13) + timedelta(days=14)


def test_the_transition_table() -> None:
    s, c = RecordingStatus, Change
    held_or_released = frozenset({s.HELD, s.RELEASED})
    assert TRANSITIONS[s.PENDING_REVIEW, c.REVIEWED] == {s.REVIEWED}
    for status in (s.REVIEWED, s.HELD, s.RELEASED):
        assert TRANSITIONS[status, c.REVIEWED] == {status}  # a review lifts no hold
    for status in (s.PENDING_REVIEW, s.REVIEWED, s.HELD, s.RELEASED):
        assert TRANSITIONS[status, c.HOLD_PLACED] == held_or_released
        assert TRANSITIONS[status, c.HOLD_RELEASED] == held_or_released
        assert TRANSITIONS[status, c.DELETED] == {s.DELETED}
    for change in Change:
        assert TRANSITIONS[s.DELETED, change] == {s.DELETED}  # terminal (R5)


async def test_a_deletion_erases_the_texts_of_events_still_waiting_for_their_hold(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    """R5: a release waiting for a hold that has not arrived keeps no free text once the
    recording is deleted — neither one that waited before the deletion nor one that arrives
    after it (regression: the justification stayed until the pending purge, up to a retention
    period after the release)."""
    rid, early, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await deliver(consumer, ingested(rid), hold_released_event(
        rid, early, released_at=at(30), justification="suspect Max M. identified"))
    await deliver(consumer, deleted_event(rid, deleted_at=at(40)))
    await deliver(consumer, hold_released_event(
        rid, late, released_at=at(50), justification="witness Erika S. heard"))
    assert await pending(pool, rid) == ["recording.hold_released"] * 2
    data = await pool.fetchval("SELECT string_agg(data::text, ' ') FROM catalog.pending_events"
                               " WHERE recording_id = $1", rid)
    assert "Max M." not in data and "Erika S." not in data
    # The erased events still apply (without texts) when their holds arrive.
    await deliver(consumer, hold_placed_event(rid, early, placed_at=at(20)),
                  hold_placed_event(rid, late, placed_at=at(25)))
    assert await pending(pool, rid) == []
    assert await status(pool, rid) == "deleted"
    assert all(h["release_justification"] is None and h["released_at"] is not None
               for h in await holds(pool, rid))
