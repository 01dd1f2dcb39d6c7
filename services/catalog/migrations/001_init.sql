-- Catalogue schema: the projection of recordings.v1 the read APIs serve.
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
    status            text        NOT NULL DEFAULT 'pending_review'
        CHECK (status IN ('pending_review', 'reviewed', 'held', 'released', 'deleted')),
    delete_after      timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Keyset pagination walks (recorded_at DESC, id DESC).
CREATE INDEX recordings_recorded ON recordings (recorded_at DESC, id DESC);
CREATE INDEX recordings_device ON recordings (device_id, recorded_at DESC);
CREATE INDEX recordings_officer ON recordings (officer_id, recorded_at DESC);
CREATE INDEX recordings_deadline ON recordings (delete_after) WHERE status <> 'deleted';

-- Idempotent consumption: an event id is recorded in the transaction that applies it.
CREATE TABLE processed_events (
    event_id     text PRIMARY KEY,
    type         text        NOT NULL,
    topic        text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Messages that could not be understood are kept here, not dropped.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint     NOT NULL,
    key         text,
    value       bytea,
    error       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, kafka_partition, kafka_offset)
);
