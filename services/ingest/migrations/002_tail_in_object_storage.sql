-- Bytes below one S3 part no longer wait in Postgres (where WAL, replicas and backups would
-- keep video after a hard delete, R5) but in an object `incomplete/<id>/tail-<start>-<end>`.
ALTER TABLE uploads DROP COLUMN tail;
ALTER TABLE uploads ADD COLUMN tail_key text;
-- The version the tail was stored as: removed by version id, without listing the bucket.
ALTER TABLE uploads ADD COLUMN tail_version text;
ALTER TABLE uploads ADD COLUMN tail_size bigint NOT NULL DEFAULT 0 CHECK (tail_size >= 0);
