-- The rows that name a job (its history, its outbox and nova_outbox rows, the
-- processed message) are written in the transaction that writes the job, and jobs
-- are never deleted, so the foreign keys to jobs never refused or cascaded anything.
-- Each still cost a row lock on the job and a trigger per row written: about 8 per
-- power-off job and 20 per spawn (BENCHMARKS.md, 2026-12-06).
ALTER TABLE job_history DROP CONSTRAINT IF EXISTS job_history_job_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_job_id_fkey;
ALTER TABLE nova_outbox DROP CONSTRAINT IF EXISTS nova_outbox_job_id_fkey;
ALTER TABLE processed_messages DROP CONSTRAINT IF EXISTS processed_messages_job_id_fkey;
