-- The writes to nova (conductor calls, scheduler casts, placement requests) that
-- committed job transitions owe, performed in order per instance by worker/nova.
CREATE TABLE nova_outbox (
    id             bigserial PRIMARY KEY,
    job_id         bigint REFERENCES jobs (id) ON DELETE SET NULL,
    compute_host   text NOT NULL,
    instance_uuid  text NOT NULL,
    op             text NOT NULL,             -- instance_save, event_start, event_finish, ...
    payload        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_after      timestamptz NOT NULL DEFAULT now(),
    locked_until   timestamptz,
    done_at        timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text NOT NULL DEFAULT '',
    note           text NOT NULL DEFAULT ''   -- how it ended (done, skipped: why)
);
CREATE INDEX nova_outbox_pending ON nova_outbox (compute_host, instance_uuid, id) WHERE done_at IS NULL;
