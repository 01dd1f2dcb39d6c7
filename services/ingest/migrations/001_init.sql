-- Ingest schema: registered devices and the state of every tus upload.
CREATE TABLE devices (
    device_id     text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    model         text,
    officer_id    text,
    enabled       boolean     NOT NULL DEFAULT true,
    registered_by text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per tus upload; the upload id is the recording id.
-- Bytes below S3's minimum part size wait in `tail` between PATCH requests, so an upload
-- survives an ingest restart without holding more than one part in memory.
CREATE TABLE uploads (
    id                uuid PRIMARY KEY,
    device_id         text        NOT NULL REFERENCES devices (device_id),
    upload_length     bigint      NOT NULL CHECK (upload_length > 0),
    upload_offset     bigint      NOT NULL DEFAULT 0,
    metadata_header   text        NOT NULL,
    metadata          jsonb       NOT NULL,
    object_key        text        NOT NULL UNIQUE,
    s3_upload_id      text        NOT NULL,
    parts             jsonb       NOT NULL DEFAULT '[]',
    tail              bytea       NOT NULL DEFAULT '\x',
    state             text        NOT NULL DEFAULT 'receiving'
        CHECK (state IN ('receiving', 'completing', 'completed', 'rejected', 'terminated')),
    sha256            text,
    object_version_id text,
    reason            text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    CHECK (upload_offset BETWEEN 0 AND upload_length)
);
CREATE INDEX uploads_open ON uploads (state, updated_at)
    WHERE state IN ('receiving', 'completing');
