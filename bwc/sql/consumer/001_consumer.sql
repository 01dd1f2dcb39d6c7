-- At-least-once consumption (bwc.consumer): the event ids already applied, and the messages
-- that were parked instead of blocking their partition. IF NOT EXISTS: the catalogue created
-- both tables in its own first migration before they became shared.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id     text PRIMARY KEY,
    type         text        NOT NULL,
    topic        text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id              bigserial PRIMARY KEY,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    key             text,
    value           bytea,
    error           text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
-- How often the handler was tried before the message was parked.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 1;
-- A message is the same message only if its bytes are too: offsets start again when a topic
-- is recreated (or the embedded broker restarts), and a different message parked at a reused
-- offset must be kept, not dropped as a duplicate. (The catalogue's first migration had a
-- unique constraint on the offset alone.)
ALTER TABLE dead_letters
    DROP CONSTRAINT IF EXISTS dead_letters_topic_kafka_partition_kafka_offset_key;
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_message
    ON dead_letters (topic, kafka_partition, kafka_offset, md5(coalesce(value, '')));
