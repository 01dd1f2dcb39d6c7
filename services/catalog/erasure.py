"""What of a recording the catalogue keeps after ``recording.deleted`` (R5), field by field.

R5: after the hard delete only a deletion record stays — ids, hash, times, reason, no content.
R9: the pilot's evaluation still counts the deleted recordings (activations per month and staff
member, announced vs imminent danger, in a home, kept as evidence by reason, time from upload
to first review, deletions on time). Every column of the projection's tables is listed here
either as kept or as erased; ``tests/catalog/test_erasure.py`` fails when a column is added
without a decision. docs/catalog.md ("What remains after deletion") gives the reasons.
"""

from __future__ import annotations

#: Set to NULL on deletion: what the recording shows or says, and where its bytes were.
ERASED: dict[str, tuple[str, ...]] = {
    "recordings": (
        "filename", "location", "trigger_reason", "content_type",
        "bucket", "object_key", "object_version_id",
    ),
    # Written about the recording's content or naming the proceedings of a person.
    "holds": ("case_reference", "justification", "release_justification"),
    "reviews": (),  # the catalogue never stores a review's note
}

#: Survive the deletion: the deletion record (R5) and what R9 counts.
KEPT: dict[str, tuple[str, ...]] = {
    "recordings": (
        "id", "device_id", "officer_id", "recorded_at", "ended_at", "uploaded_at",
        "size_bytes", "sha256", "announced", "imminent_danger", "in_home", "status",
        "delete_after", "first_reviewed_at", "deleted_at", "deletion_reason", "updated_at",
    ),
    "holds": (
        "id", "recording_id", "reason", "placed_by", "placed_at", "released_by", "released_at",
    ),
    "reviews": ("event_id", "recording_id", "outcome", "reviewer", "reviewed_at"),
}
