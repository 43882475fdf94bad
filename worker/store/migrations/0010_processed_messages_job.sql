-- A job names the message it came from (jobs.message_id, unique), so recording a
-- message's job a second time, on its processed_messages row, is no longer done: it
-- rewrote every such row in the transaction that created it. The column stays for
-- the rows written before, and for workers of an earlier version still running.
COMMENT ON COLUMN processed_messages.job_id IS 'written before migration 0010 only; jobs.message_id links a message to its job';
