-- R7: the auditors' filter columns (event_id, actor, action, recording_id, occurred_at) are
-- derived by the database from the hashed canonical bytes instead of being written beside
-- them. 004 stored copies that the hash does not cover: changed behind the database's back
-- (a superuser, triggers off) they hid an entry from "who viewed this recording?" while verify
-- said ok. A generated column cannot be updated, not even by a superuser; it follows
-- canonical, whose changes verify finds. Making one writable again takes DDL (DROP
-- EXPRESSION, DROP COLUMN), which verify checks for (services/catalog/audit_chain.py) before
-- it trusts them, and then compares every entry's columns with its event.
--
-- The canonical bytes are RFC 8785 JSON in UTF-8 and the time is RFC 3339 with its offset,
-- so both extractions depend on nothing but their input: IMMUTABLE is true of them.
CREATE FUNCTION audit_event_text(canonical bytea, path text[]) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT convert_from(canonical, 'UTF8')::jsonb #>> path $$;

CREATE FUNCTION audit_event_instant(canonical bytea) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (convert_from(canonical, 'UTF8')::jsonb #>> '{data,occurred_at}')::timestamptz $$;

ALTER TABLE audit_chain
    DROP COLUMN event_id,
    DROP COLUMN actor,
    DROP COLUMN action,
    DROP COLUMN recording_id,
    DROP COLUMN occurred_at,
    -- a redelivered event is never appended twice
    ADD COLUMN event_id text NOT NULL UNIQUE
        GENERATED ALWAYS AS (audit_event_text(canonical, '{id}')) STORED,
    ADD COLUMN actor text NOT NULL
        GENERATED ALWAYS AS (audit_event_text(canonical, '{data,actor}')) STORED,
    ADD COLUMN action text NOT NULL
        GENERATED ALWAYS AS (audit_event_text(canonical, '{data,action}')) STORED,
    ADD COLUMN recording_id uuid
        GENERATED ALWAYS AS (audit_event_text(canonical, '{data,recording_id}')::uuid) STORED,
    ADD COLUMN occurred_at timestamptz NOT NULL
        GENERATED ALWAYS AS (audit_event_instant(canonical)) STORED;

CREATE INDEX audit_chain_recording ON audit_chain (recording_id, seq) WHERE recording_id IS NOT NULL;
CREATE INDEX audit_chain_actor ON audit_chain (actor, seq);
CREATE INDEX audit_chain_action ON audit_chain (action, seq);
CREATE INDEX audit_chain_occurred ON audit_chain (occurred_at, seq);
