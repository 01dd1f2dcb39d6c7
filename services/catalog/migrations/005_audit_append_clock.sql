-- R7: an append must not be refused because the database's clock stepped back (an NTP
-- correction) behind the head's appended_at. 004 stamped such an append with the head's time
-- (so appended_at never decreases) and then refused exactly that value as "in the future": the
-- consumer parks a refused event in dead_letters, so every access in that window was missing
-- from the chain. A stamped value is taken as it is; a value the caller names (a test, a
-- migration backdating) is still checked against the head and the clock.
CREATE OR REPLACE FUNCTION audit_chain_append() RETURNS trigger
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
    IF NEW.appended_at IS NULL THEN
        NEW.appended_at := greatest(clock_timestamp(), head.appended_at);
    ELSIF NEW.appended_at < head.appended_at OR NEW.appended_at > clock_timestamp() THEN
        RAISE EXCEPTION 'audit chain: appended_at % is before the head''s or in the future',
            NEW.appended_at USING ERRCODE = 'check_violation';
    END IF;
    UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash, appended_at = NEW.appended_at;
    RETURN NEW;
END $$;
