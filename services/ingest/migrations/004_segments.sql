-- Bytes below one S3 part are kept as append-only segments (one object per PATCH), not one
-- tail object rewritten by every PATCH. Each row names an object ingest wrote or was about to
-- write under incomplete/<id>/: written before the PUT (end_offset, version_id NULL), completed
-- in the transaction that advances the offset. Rows go only once S3 confirmed the removal, so
-- no object is ever unknown to the database and none is found by listing the bucket (R5).
CREATE TABLE upload_segments (
    upload_id    uuid   NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    key          text   NOT NULL,
    start_offset bigint NOT NULL CHECK (start_offset >= 0),
    end_offset   bigint CHECK (end_offset > start_offset),
    version_id   text,
    PRIMARY KEY (upload_id, key)
);
INSERT INTO upload_segments (upload_id, key, start_offset, end_offset, version_id)
    SELECT id, tail_key, stored_end - tail_size, stored_end, tail_version
    FROM (SELECT *, CASE WHEN state = 'completing' THEN upload_length ELSE upload_offset END
                    AS stored_end FROM uploads) u WHERE tail_key IS NOT NULL AND tail_size > 0;
ALTER TABLE uploads DROP COLUMN tail_key;
ALTER TABLE uploads DROP COLUMN tail_version;
-- The SHA-256 of the bytes as they arrived, recorded with the last byte (a digest, no content):
-- whichever process completes the upload needs not read the recording back (R6).
ALTER TABLE uploads ADD COLUMN received_sha256 text CHECK (received_sha256 ~ '^[0-9a-f]{64}$');
