"""The life of one tus upload, named once.

::

    creating ──▶ receiving ──▶ completing ──▶ completed
        │            │              │
        └────────────┴──▶ terminated └──▶ rejected

``creating``: the row exists, the S3 multipart upload may or may not (a crash in between leaves
it for the janitor to abort). ``completing``: every byte is stored, the recording is being
verified; the device is not told the full offset until ``completed`` (R6). ``rejected`` and
``terminated`` are closed: every stored byte is removed (R5), only ids, times and the reason
stay.
"""

from __future__ import annotations

from enum import StrEnum


class UploadState(StrEnum):
    CREATING = "creating"
    RECEIVING = "receiving"
    COMPLETING = "completing"
    COMPLETED = "completed"
    REJECTED = "rejected"
    TERMINATED = "terminated"

    @property
    def closed(self) -> bool:
        """Ended without a recording: nothing of it is kept."""
        return self in (UploadState.REJECTED, UploadState.TERMINATED)


#: Which state may follow which; the repository's updates only ever make these moves.
TRANSITIONS: dict[UploadState, frozenset[UploadState]] = {
    UploadState.CREATING: frozenset({UploadState.RECEIVING, UploadState.TERMINATED}),
    UploadState.RECEIVING: frozenset({UploadState.COMPLETING, UploadState.TERMINATED}),
    UploadState.COMPLETING: frozenset({UploadState.COMPLETED, UploadState.REJECTED}),
    UploadState.COMPLETED: frozenset(),
    UploadState.REJECTED: frozenset(),
    UploadState.TERMINATED: frozenset(),
}


def sources(target: UploadState) -> list[str]:
    """The states an upload may be in to move to ``target`` (for guarded updates)."""
    return [str(s) for s, nexts in TRANSITIONS.items() if target in nexts]
