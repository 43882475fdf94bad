-- xcatbm's store: nodes, jobs and their history, the outbox, processed message ids.

-- One row per xCAT node registered with xcatbm.
CREATE TABLE nodes (
    name            text PRIMARY KEY,
    compute_host    text NOT NULL,             -- the nova compute host that serves it
    mgmt_node       text NOT NULL DEFAULT '',  -- the xCAT management node that manages it
    mgt             text NOT NULL DEFAULT '',  -- nodehm power/mgt: ipmi, blade, fsp, hmc, ...
    mac             text NOT NULL DEFAULT '',
    bmc             text NOT NULL DEFAULT '',
    bmc_username    text NOT NULL DEFAULT '',
    bmc_password    text NOT NULL DEFAULT '',  -- a credential; never logged
    cpus            integer NOT NULL DEFAULT 0,
    memory_mb       integer NOT NULL DEFAULT 0,
    disk_gb         integer NOT NULL DEFAULT 0,
    resource_class  text NOT NULL DEFAULT '',
    original_ip     text NOT NULL DEFAULT '',  -- the node's xCAT ip before a tenant's
    instance_uuid   text NOT NULL DEFAULT '',  -- '' when free
    power_state     text NOT NULL DEFAULT 'unknown', -- on, off, unknown (xcatbm's record)
    power_misses    integer NOT NULL DEFAULT 0,      -- consecutive sync sweeps without an answer
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_compute_host ON nodes (compute_host);

-- One row per job: a received cast or registration request.
CREATE TABLE jobs (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,             -- spawn, destroy, power_on, power_off, reboot, ...
    compute_host    text NOT NULL,
    node            text NOT NULL DEFAULT '',  -- xCAT node; '' until resolved
    instance_uuid   text NOT NULL DEFAULT '',
    state           text NOT NULL,             -- the state machine's state (a step or a final state)
    step_started    boolean NOT NULL DEFAULT false, -- the step's xCAT call may have run
    attempts        integer NOT NULL DEFAULT 0,     -- attempts of the current step
    request         jsonb NOT NULL,            -- what the job was asked (secrets stripped)
    data            jsonb NOT NULL DEFAULT '{}',    -- what its steps learned
    error           text NOT NULL DEFAULT '',
    message_id      text UNIQUE,               -- the envelope's _unique_id
    cancel_requested boolean NOT NULL DEFAULT false,
    deadline        timestamptz NOT NULL,
    run_after       timestamptz NOT NULL DEFAULT now(),
    locked_by       text NOT NULL DEFAULT '',  -- the worker running it
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX jobs_open ON jobs (compute_host, run_after) WHERE finished_at IS NULL;
CREATE INDEX jobs_open_node ON jobs (node, id) WHERE finished_at IS NULL;
CREATE INDEX jobs_instance ON jobs (instance_uuid);

-- Every transition of every job.
CREATE TABLE job_history (
    id          bigserial PRIMARY KEY,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    step        text NOT NULL DEFAULT '',
    detail      text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX job_history_job ON job_history (job_id, id);

-- Messages to publish, written in the transaction of the transition that caused them.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    job_id        bigint REFERENCES jobs (id) ON DELETE SET NULL,
    exchange      text NOT NULL,
    routing_key   text NOT NULL,
    message_id    text NOT NULL,               -- notification message_id, for dedup downstream
    body          bytea NOT NULL,
    expiration    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- The _unique_id of every RPC message already turned into a job (or rejected).
CREATE TABLE processed_messages (
    unique_id    text PRIMARY KEY,
    job_id       bigint REFERENCES jobs (id) ON DELETE SET NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
