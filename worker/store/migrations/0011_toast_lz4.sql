-- A job's request (the instance nova sent: several kB), the data its steps learned,
-- an outbox row's notification and a nova write's payload are mostly past
-- PostgreSQL's 2 kB TOAST threshold, so every one is compressed as it is written.
-- pglz, the default, took about half of each job insert's time in the power storm
-- (pg_stat_statements); lz4 compresses the same values in a fraction of it. A server
-- built without lz4, or older than PostgreSQL 14, keeps pglz: what is stored reads
-- the same either way, and values written before keep their compression.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE jobs ALTER COLUMN request SET COMPRESSION lz4, ALTER COLUMN data SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE nova_outbox ALTER COLUMN payload SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'TOAST compression stays pglz: %', SQLERRM;
END
$$;
