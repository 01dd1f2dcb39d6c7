"""The status of a recording in the catalogue (DESIGN §4), named once, and the one table of
how each ``recordings.v1`` event moves it.

::

    pending_review ──review──▶ reviewed
          │                        │
          └──hold──▶ held ◀──hold──┘          (a review of a held or released recording
                      │  ▲                      is recorded but does not change its status)
      last hold released│  │ new hold
                      ▼  │
                    released
                                               any status ──deleted──▶ deleted (terminal)

- ``held`` while at least one hold stands (R3); releasing one of several holds keeps it held.
- ``released``: every hold was released (R4); the recording is subject to its deadline again.
  A new hold makes it ``held`` again.
- ``reviewed``: reviewed without a hold (``no_evidence``); a later hold makes it ``held``.
- ``deleted`` is terminal (R5): a hold or review arriving after the deletion is recorded,
  without content, but the status stays ``deleted`` and nothing comes back.

The status is therefore a function of the *set* of events applied, not of their order:
deleted if any deletion, else held if a hold stands, else released if a hold was ever placed,
else reviewed if any review, else pending_review. ``next_status`` is the incremental form of
that rule, which is what makes a replay with duplicates and reordering end in the same state.
"""

from __future__ import annotations

from enum import StrEnum


class RecordingStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    REVIEWED = "reviewed"
    HELD = "held"
    RELEASED = "released"
    DELETED = "deleted"


class Change(StrEnum):
    """What a ``recordings.v1`` event does to a known recording (``recording.ingested``
    creates it in ``pending_review``)."""

    REVIEWED = "recording.reviewed"
    HOLD_PLACED = "recording.hold_placed"
    HOLD_RELEASED = "recording.hold_released"
    DELETED = "recording.deleted"


INITIAL = RecordingStatus.PENDING_REVIEW


def next_status(
    current: RecordingStatus, change: Change, *, standing_holds: int
) -> RecordingStatus:
    """The status after ``change``; ``standing_holds`` counts the recording's unreleased holds
    *after* the change was recorded."""
    if current is RecordingStatus.DELETED or change is Change.DELETED:
        return RecordingStatus.DELETED  # R5: terminal
    if change is Change.REVIEWED:
        # A review never lifts a hold: only a pending recording becomes "reviewed".
        return RecordingStatus.REVIEWED if current is RecordingStatus.PENDING_REVIEW else current
    # A hold placed or released: held while any stands (R3), else released (R4). A placement
    # whose release arrived first (and is recorded) leaves the recording released.
    return RecordingStatus.HELD if standing_holds > 0 else RecordingStatus.RELEASED


#: Every move ``next_status`` can make, for the docs and the tests: (from, change) → to, where
#: a hold change's target depends on whether holds still stand ("held" / "released").
TRANSITIONS: dict[tuple[RecordingStatus, Change], frozenset[RecordingStatus]] = {
    (status, change): frozenset(
        next_status(status, change, standing_holds=n) for n in (0, 1))
    for status in RecordingStatus for change in Change
}
