-- R7: the hash-chained audit log (docs/audit.md). Every audit.recorded event becomes one entry:
-- seq (1, 2, 3, … with no gaps), the RFC 8785 canonical bytes of the CloudEvent, prev_hash (the
-- previous entry's hash; 32 zero bytes for entry 1) and hash = sha256(prev_hash || canonical),
-- computed by the catalogue (bwc/audit_chain.py) and checked again here on insert.
--
-- The database, not the service, keeps the chain append-only, for every role that does not
-- bypass triggers (only a superuser with session_replication_role = replica, or the table's
-- owner disabling a trigger, can; verify and outside-kept heads find what they do):
--   * INSERT must extend the head by exactly one linked entry (audit_chain_append);
--   * UPDATE and TRUNCATE are refused (audit_chain_refuse);
--   * DELETE is refused except for entries at or below the anchor that are older than two years
--     (audit_chain_delete_guard), and the anchor only moves forward onto an existing entry
--     whose prefix is entirely older than two years (audit_chain_anchor_guard): the one way out
--     is audit_chain_prune(), which stores the anchor first and then removes that prefix.
-- The functions keep the migration's search_path (SET search_path FROM CURRENT), so they find
-- the schema's tables whatever the caller's search_path.

-- How long entries must be kept (R7: audit records outlive the recordings, two years).
CREATE FUNCTION audit_retention_cutoff() RETURNS timestamptz
    LANGUAGE sql STABLE SET search_path FROM CURRENT
    AS $$ SELECT now() - interval '2 years' $$;

CREATE TABLE audit_chain (
    seq          bigint      PRIMARY KEY CHECK (seq > 0),
    event_id     text        NOT NULL UNIQUE,  -- a redelivered event is never appended twice
    canonical    bytea       NOT NULL,
    prev_hash    bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash         bytea       NOT NULL CHECK (octet_length(hash) = 32),
    -- Copied from the event for the auditors' filters only; the API shows the event parsed from
    -- the hashed canonical bytes, never these.
    actor        text        NOT NULL,
    action       text        NOT NULL,
    recording_id uuid,
    occurred_at  timestamptz NOT NULL,
    -- Set under the head lock; never decreases along the chain, so "older than two years" is
    -- always a prefix (the retention step relies on it).
    appended_at  timestamptz NOT NULL
);
CREATE INDEX audit_chain_recording ON audit_chain (recording_id, seq) WHERE recording_id IS NOT NULL;
CREATE INDEX audit_chain_actor ON audit_chain (actor, seq);
CREATE INDEX audit_chain_action ON audit_chain (action, seq);
CREATE INDEX audit_chain_occurred ON audit_chain (occurred_at, seq);
CREATE INDEX audit_chain_appended ON audit_chain (appended_at, seq);

-- One row: the newest entry. Appends lock it FOR UPDATE, so however many catalogue replicas
-- consume audit.v1 (and from however many partitions), entries get their seq one at a time.
CREATE TABLE audit_chain_head (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint      NOT NULL,
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    appended_at timestamptz NOT NULL
);
INSERT INTO audit_chain_head VALUES (true, 0, decode(repeat('00', 32), 'hex'), '-infinity');

-- At most one row: seq and hash of the last entry the retention step removed. The chain is
-- verified from here (from seq 0 and the genesis hash while there is no row).
CREATE TABLE audit_chain_anchor (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint      NOT NULL CHECK (seq > 0),
    hash      bytea       NOT NULL CHECK (octet_length(hash) = 32),
    pruned_at timestamptz NOT NULL
);

CREATE FUNCTION audit_chain_refuse() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION 'audit chain is append-only (R7): % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries leave only as a prefix older than two years, via audit_chain_prune()';
END $$;

CREATE FUNCTION audit_chain_append() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    head audit_chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM audit_chain_head FOR UPDATE;
    IF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
        RAISE EXCEPTION 'audit chain: entry % does not extend the head (seq %)', NEW.seq, head.seq
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.hash <> sha256(NEW.prev_hash || NEW.canonical) THEN
        RAISE EXCEPTION 'audit chain: entry % has a wrong hash', NEW.seq
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.appended_at := coalesce(NEW.appended_at, greatest(clock_timestamp(), head.appended_at));
    IF NEW.appended_at < head.appended_at OR NEW.appended_at > clock_timestamp() THEN
        RAISE EXCEPTION 'audit chain: appended_at % is before the head''s or in the future',
            NEW.appended_at USING ERRCODE = 'check_violation';
    END IF;
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash, appended_at = NEW.appended_at;
    RETURN NEW;
END $$;

-- The head moves only with an insert (trigger depth 2: this trigger inside audit_chain_append).
CREATE FUNCTION audit_chain_head_guard() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'audit chain head moves only when an entry is appended (R7)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION audit_chain_delete_guard() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF OLD.seq <= coalesce((SELECT seq FROM audit_chain_anchor), 0)
            AND OLD.appended_at < audit_retention_cutoff() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit chain is append-only (R7): DELETE of entry % refused', OLD.seq
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'entries leave only as a prefix older than two years, via audit_chain_prune()';
END $$;

CREATE FUNCTION audit_chain_anchor_guard() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    old_seq bigint := CASE WHEN TG_OP = 'UPDATE' THEN OLD.seq ELSE 0 END;
BEGIN
    IF NEW.seq <= old_seq THEN
        RAISE EXCEPTION 'audit chain anchor moves forward only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_chain WHERE seq = NEW.seq AND hash = NEW.hash) THEN
        RAISE EXCEPTION 'audit chain anchor must be an entry of the chain'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM audit_chain WHERE seq > old_seq AND seq <= NEW.seq
               AND appended_at >= audit_retention_cutoff()) THEN
        RAISE EXCEPTION 'audit chain anchor would cover entries younger than two years (R7)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_chain_append BEFORE INSERT ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_refuse();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_refuse();
CREATE TRIGGER audit_chain_delete_guard BEFORE DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_delete_guard();

CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_guard();
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE OR TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_refuse();

CREATE TRIGGER audit_chain_anchor_guard BEFORE INSERT OR UPDATE ON audit_chain_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_chain_anchor_guard();
CREATE TRIGGER audit_chain_anchor_no_delete BEFORE DELETE OR TRUNCATE ON audit_chain_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_refuse();

-- The retention step (R7), the one way entries leave: under the head lock (no append runs
-- meanwhile), find the longest prefix of entries older than two years, store its last entry
-- as the anchor, then delete the prefix. Returns how many entries were removed.
CREATE FUNCTION audit_chain_prune() RETURNS bigint
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    head_seq  bigint;
    upto      bigint;
    upto_hash bytea;
    removed   bigint;
BEGIN
    SELECT seq INTO head_seq FROM audit_chain_head FOR UPDATE;
    -- appended_at never decreases along the chain: the first young entry ends the prefix.
    SELECT coalesce((SELECT seq - 1 FROM audit_chain WHERE appended_at >= audit_retention_cutoff()
                     ORDER BY appended_at, seq LIMIT 1), head_seq) INTO upto;
    IF upto <= coalesce((SELECT seq FROM audit_chain_anchor), 0) THEN
        RETURN 0;
    END IF;
    SELECT hash INTO upto_hash FROM audit_chain WHERE seq = upto;
    IF upto_hash IS NULL THEN
        RAISE EXCEPTION 'audit chain: entry % is missing; the chain is broken, nothing pruned', upto
            USING ERRCODE = 'data_corrupted';
    END IF;
    INSERT INTO audit_chain_anchor (seq, hash, pruned_at) VALUES (upto, upto_hash, now())
        ON CONFLICT (singleton) DO UPDATE
        SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, pruned_at = EXCLUDED.pruned_at;
    DELETE FROM audit_chain WHERE seq <= upto;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END $$;
