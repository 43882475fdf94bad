-- Where each registered node stands in nova and placement, as the worker's nova
-- integration last found it: ready once its compute node and its resource provider
-- with inventory exist; pending while something is missing and being retried;
-- failed when nova or placement refused.
CREATE TABLE node_registrations (
    name          text PRIMARY KEY REFERENCES nodes (name) ON DELETE CASCADE,
    state         text NOT NULL,             -- ready, pending, failed
    detail        text NOT NULL DEFAULT '',  -- what exists, what is missing and why
    compute_node  text NOT NULL DEFAULT '',  -- uuid of the compute node and resource provider
    updated_at    timestamptz NOT NULL DEFAULT now()
);
