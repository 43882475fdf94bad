-- A job that is its instance's last word (terminate) cancels the instance's jobs
-- recorded before it, and any job of the instance recorded after it is cancelled at
-- once: a spawn whose instance was already deleted must never touch xCAT.
ALTER TABLE jobs ADD COLUMN last_word boolean NOT NULL DEFAULT false;
CREATE INDEX jobs_last_word ON jobs (instance_uuid, id) WHERE last_word;
