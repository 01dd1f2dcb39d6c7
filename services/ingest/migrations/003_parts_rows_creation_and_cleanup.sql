-- Parts as rows: one INSERT per new part instead of rewriting a growing jsonb array on every
-- PATCH (which made WAL grow with the square of the file size).
CREATE TABLE upload_parts (
    upload_id uuid   NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    number    int    NOT NULL CHECK (number BETWEEN 1 AND 10000),
    etag      text   NOT NULL,
    size      bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (upload_id, number)
);
INSERT INTO upload_parts (upload_id, number, etag, size)
    SELECT u.id, (p->>'number')::int, p->>'etag', (p->>'size')::bigint
    FROM uploads u, jsonb_array_elements(u.parts) p;
ALTER TABLE uploads DROP COLUMN parts;

-- The row is written before the S3 multipart upload is created ('creating', no upload id yet),
-- so a crash in between leaves a row the janitor can finish (R5).
ALTER TABLE uploads ALTER COLUMN s3_upload_id DROP NOT NULL;
ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_state_check CHECK (state IN
    ('creating', 'receiving', 'completing', 'completed', 'rejected', 'terminated'));

-- When the last byte was stored: the moment the upload completed (R2 check, uploaded_at).
ALTER TABLE uploads ADD COLUMN received_at timestamptz;
-- Stored bytes still to be removed (tails after completion; everything after a rejection):
-- set in the transaction that ends the upload, cleared once S3 confirmed the removal, retried
-- by the janitor until then (R5).
ALTER TABLE uploads ADD COLUMN cleanup_pending boolean NOT NULL DEFAULT false;
CREATE INDEX uploads_cleanup_pending ON uploads (updated_at) WHERE cleanup_pending;
DROP INDEX uploads_open;
CREATE INDEX uploads_open ON uploads (state, updated_at)
    WHERE state IN ('creating', 'receiving', 'completing');
