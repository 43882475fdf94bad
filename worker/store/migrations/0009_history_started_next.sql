-- A transition that starts the next step in its own transaction (the step goes on in
-- the same worker at once) says so on its row, rather than in a row of its own: the
-- step started at the transition's time.
ALTER TABLE job_history ADD COLUMN started_next boolean NOT NULL DEFAULT false;
