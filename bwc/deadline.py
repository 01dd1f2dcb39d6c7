"""The R2 deadline: the one place that says when a recording must be gone.

R2: a recording is deleted at the latest ``retention_period`` (at most 14 days) after it was
*made*. A device clock running a little fast may report a ``recorded_at`` up to the clock-skew
allowance in the future; counting from that moment would push the deadline past 14 days after
the real recording, so a future ``recorded_at`` counts as "now".
"""

from __future__ import annotations

from datetime import datetime, timedelta


def deletion_deadline(
    recorded_at: datetime, *, retention_period: timedelta, now: datetime
) -> datetime:
    """When the recording made at ``recorded_at`` must be deleted (R2), never later than
    ``retention_period`` after ``now``."""
    return min(recorded_at, now) + retention_period


def is_past_deadline(deadline: datetime, *, now: datetime) -> bool:
    """Whether nothing of the recording may be kept any more (R2): the deadline is inclusive."""
    return deadline <= now
