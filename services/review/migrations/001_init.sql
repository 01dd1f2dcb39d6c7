-- Review's own view of recordings.v1 (it reads no other service's tables) and what reviewers
-- and supervisors record here: holds (R3/R4), reviews, judicial confirmations (R8).

-- One row per recording review knows and that is not deleted. Everything here is personal
-- data with the recording's deadline: a recording.deleted removes the row (and, through the
-- foreign keys, its holds, reviews and confirmations) and leaves only a tombstone (R5).
CREATE TABLE recordings (
    id                uuid PRIMARY KEY,
    device_id         text        NOT NULL,
    officer_id        text,
    recorded_at       timestamptz NOT NULL,
    ended_at          timestamptz,
    uploaded_at       timestamptz NOT NULL,
    size_bytes        bigint      NOT NULL,
    sha256            text        NOT NULL,
    content_type      text        NOT NULL,
    filename          text,
    trigger_reason    text        NOT NULL,
    announced         boolean     NOT NULL,
    imminent_danger   boolean     NOT NULL,
    in_home           boolean     NOT NULL,
    location          text,
    bucket            text        NOT NULL,
    object_key        text        NOT NULL,
    object_version_id text,
    -- R2: never later than recorded_at + this deployment's retention period.
    delete_after      timestamptz NOT NULL
);

-- What is left of a deleted recording: no content, only that it existed and when it went, so
-- that a request for it is answered 410 and a late recording.ingested brings nothing back.
CREATE TABLE deleted_recordings (
    id         uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL,
    reason     text        NOT NULL
);

-- R3: a recording is held while at least one of its holds is not released. Several may stand.
CREATE TABLE holds (
    id                    uuid PRIMARY KEY,
    recording_id          uuid        NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    reason                text        NOT NULL
        CHECK (reason IN ('owi', 'criminal', 'danger', 'data_subject_request')),
    case_reference        text        NOT NULL,
    justification         text        NOT NULL,
    placed_by             text        NOT NULL,
    placed_at             timestamptz NOT NULL,
    released_by           text,
    released_at           timestamptz,
    release_justification text,
    -- R4: four eyes, stated in the schema as well as in the handler.
    CHECK (released_by IS NULL OR released_by <> placed_by),
    CHECK ((released_by IS NULL) = (released_at IS NULL)),
    CHECK ((released_by IS NULL) = (release_justification IS NULL))
);
CREATE INDEX holds_standing ON holds (recording_id) WHERE released_at IS NULL;
CREATE INDEX holds_recording ON holds (recording_id, placed_at);

-- "Sichtung": a reviewer looked at the recording and found no evidence.
CREATE TABLE reviews (
    event_id     text PRIMARY KEY,
    recording_id uuid        NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    outcome      text        NOT NULL,
    note         text,
    reviewer     text        NOT NULL,
    reviewed_at  timestamptz NOT NULL
);
CREATE INDEX reviews_recording ON reviews (recording_id, reviewed_at);

-- R8: a recording made in a home leaves the system only after a court confirmed the measure.
CREATE TABLE judicial_confirmations (
    recording_id uuid PRIMARY KEY REFERENCES recordings (id) ON DELETE CASCADE,
    reference    text        NOT NULL,
    court        text        NOT NULL,
    decided_at   timestamptz NOT NULL,
    recorded_by  text        NOT NULL,
    recorded_at  timestamptz NOT NULL
);
