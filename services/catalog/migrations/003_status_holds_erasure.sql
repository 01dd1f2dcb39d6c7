-- Issue 6, items 3 and 4: the status machine (services/catalog/states.py), holds, reviews,
-- events waiting for their recording, and what a deletion leaves (R5, services/catalog/erasure.py).
--
-- Every stored value is derived from events, so a replay of recordings.v1 into an empty schema
-- gives the same rows: created_at (the time of the insert) goes, updated_at becomes the latest
-- occurrence time of the events applied (set by the projection, no default).
ALTER TABLE recordings DROP COLUMN created_at;
ALTER TABLE recordings ALTER COLUMN updated_at DROP DEFAULT;

-- Erased on deletion (R5): nullable from now on.
ALTER TABLE recordings ALTER COLUMN content_type DROP NOT NULL;
ALTER TABLE recordings ALTER COLUMN trigger_reason DROP NOT NULL;
ALTER TABLE recordings ALTER COLUMN bucket DROP NOT NULL;
ALTER TABLE recordings ALTER COLUMN object_key DROP NOT NULL;

ALTER TABLE recordings
    -- R9: time from upload to the first review.
    ADD COLUMN first_reviewed_at timestamptz,
    ADD COLUMN deleted_at        timestamptz,
    ADD COLUMN deletion_reason   text
        CHECK (deletion_reason IN ('deadline', 'hold_released_after_deadline', 'safety_net')),
    ADD CONSTRAINT recordings_deletion_record CHECK (
        (status = 'deleted') = (deleted_at IS NOT NULL)
        AND (deleted_at IS NULL) = (deletion_reason IS NULL)),
    -- R5: a deleted recording keeps no content; any other keeps all it must show.
    ADD CONSTRAINT recordings_erased_when_deleted CHECK (
        CASE WHEN status = 'deleted' THEN
            filename IS NULL AND location IS NULL AND trigger_reason IS NULL
            AND content_type IS NULL AND bucket IS NULL AND object_key IS NULL
            AND object_version_id IS NULL
        ELSE
            trigger_reason IS NOT NULL AND content_type IS NOT NULL AND bucket IS NOT NULL
            AND object_key IS NOT NULL
        END);

CREATE INDEX recordings_status ON recordings (status, recorded_at DESC, id DESC);

-- Holds (R3): placed by a reviewer, released by a supervisor who did not place it (R4).
-- The texts are NULL once the recording is deleted (R5).
CREATE TABLE holds (
    id                    uuid PRIMARY KEY,
    recording_id          uuid        NOT NULL REFERENCES recordings (id),
    reason                text        NOT NULL
        CHECK (reason IN ('owi', 'criminal', 'danger', 'data_subject_request')),
    case_reference        text,
    justification         text,
    placed_by             text        NOT NULL,
    placed_at             timestamptz NOT NULL,
    released_by           text,
    released_at           timestamptz,
    release_justification text,
    CHECK ((released_by IS NULL) = (released_at IS NULL)),
    CHECK (released_at IS NOT NULL OR release_justification IS NULL)
);
CREATE INDEX holds_recording ON holds (recording_id, placed_at, id);

-- Reviews ("Sichtung"). The note stays with the review service: the catalogue shows none.
CREATE TABLE reviews (
    event_id     text PRIMARY KEY,
    recording_id uuid        NOT NULL REFERENCES recordings (id),
    outcome      text        NOT NULL,
    reviewer     text        NOT NULL,
    reviewed_at  timestamptz NOT NULL
);
CREATE INDEX reviews_recording ON reviews (recording_id, reviewed_at);

-- Events that arrived before what they refer to (the recording, or for a release its hold):
-- they come from different producers. Applied in (occurred_at, event_id) order once it
-- arrives; purged at kept_until = occurred_at + the retention period if it never does (R5).
CREATE TABLE pending_events (
    event_id     text PRIMARY KEY,
    recording_id uuid        NOT NULL,
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    data         jsonb       NOT NULL,
    kept_until   timestamptz NOT NULL
);
CREATE INDEX pending_events_recording ON pending_events (recording_id, occurred_at, event_id);
CREATE INDEX pending_events_kept_until ON pending_events (kept_until);
