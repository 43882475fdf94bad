-- Roles only one worker may hold at a time (the nova-compute service of a compute
-- host: its registration, heartbeat and node sync), with the time the holder must
-- renew by. A crashed holder's role passes to another worker once until is past.
CREATE TABLE leases (
    role        text PRIMARY KEY,
    holder      text NOT NULL,
    until       timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);
