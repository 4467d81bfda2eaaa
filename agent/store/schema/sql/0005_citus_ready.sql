-- plugmon schema version 5: the distribution column, named in the catalog for Citus (deploy/citus.sql).
--
-- The schema needs no change of key, index or default to be distributed by Citus: every primary
-- key and unique constraint already holds host (and bucket_start or at where the table is
-- partitioned), the ledger is keyed by host like the rows it guards, and no table takes a default
-- from a sequence (tests/agent/store/schema/citus_lint_test.cpp checks this from the catalog). So
-- this migration only records the role of host where a DBA looks for it (\d+ in psql). The hourly
-- tables copied their comments from the raw ones at creation (LIKE … INCLUDING ALL), so they get
-- theirs here as well.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['query_rollups', 'query_rollups_1h', 'execution_rollups',
                             'execution_rollups_1h', 'slow_queries', 'resource_samples',
                             'alert_events', 'alerts', 'write_batches']
    LOOP
        EXECUTE format('COMMENT ON COLUMN plugmon.%I.host IS %L', t,
                       'The agent''s host name: the identity of the writer and, under Citus, the '
                       'distribution column (deploy/citus.sql colocates every table on it with the '
                       'write_batches ledger)');
    END LOOP;
END
$$;
