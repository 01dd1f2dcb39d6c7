-- Tail objects written before segments (002-003) that no row names: superseded tails whose
-- best-effort removal failed, tails a crash left behind, and the tails of uploads that ended
-- before the upgrade but were not cleaned yet (their rows had stopped naming them). The code
-- before 004 removed them by listing incomplete/<id>/ when the upload ended; segment rows name
-- single objects, so without this those objects would outlive the recording (R5) and carry no
-- recording-id for a scan to judge them by. One marker row per upload that may still hold them
-- names its whole prefix (a key ending in '/', never current bytes: end_offset stays NULL);
-- removing it lists that prefix once. Uploads created after 004 get none.
INSERT INTO upload_segments (upload_id, key, start_offset)
    SELECT id, 'incomplete/' || id || '/', 0 FROM uploads
    WHERE (state IN ('creating', 'receiving', 'completing') OR cleanup_pending)
      AND created_at < COALESCE((SELECT applied_at FROM schema_migrations
                                 WHERE name = 'migrations/004_segments.sql'), now())
    ON CONFLICT DO NOTHING;
