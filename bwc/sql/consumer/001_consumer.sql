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
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, kafka_partition, kafka_offset)
);
-- How often the handler was tried before the message was parked.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 1;
