-- plugmon schema version 7: the audit trail (plugmon.audit) and its retention.
--
-- Every mutating API call and every reload of an agent, as its audit trail recorded it
-- (agent/audit/trail.hpp), written through the store's spool in the transaction of a batch. A row
-- is keyed by (host, run_id, seq): seq numbers an agent run's entries 1, 2, ..., and run_id is
-- the writer's random id for that run, so a replayed batch (ON CONFLICT DO NOTHING) adds nothing
-- even without its write_batches ledger entry. The key holds host, the Citus distribution column.
CREATE TABLE plugmon.audit (
    host    text        NOT NULL,
    run_id  bigint      NOT NULL,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL,
    actor   text        NOT NULL,
    client  text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL,
    status  integer     NOT NULL,
    detail  text        NOT NULL,
    PRIMARY KEY (host, run_id, seq)
);
COMMENT ON TABLE plugmon.audit IS
    'Audit trail: one row per mutating API call or reload (who, from where, what, result, when); pruned by plugmon.maintain() after the retention';
COMMENT ON COLUMN plugmon.audit.host IS
    'The agent''s host name: the identity of the writer and, under Citus, the distribution column (deploy/citus.sql colocates every table on it with the write_batches ledger)';
COMMENT ON COLUMN plugmon.audit.run_id IS
    'The agent run that recorded the entry (random per start); with host and seq the row''s identity';
COMMENT ON COLUMN plugmon.audit.seq IS 'The entry''s number within its agent run: 1, 2, ...';
COMMENT ON COLUMN plugmon.audit.actor IS
    'The token''s name, "-" without a token, "SIGHUP" or "http" for a reload';
COMMENT ON COLUMN plugmon.audit.client IS 'The remote address, or "-" for a signal';
COMMENT ON COLUMN plugmon.audit.action IS 'The route, e.g. "POST /api/v1/silences", or "reload"';
COMMENT ON COLUMN plugmon.audit.target IS 'The concrete path, or the configuration file reloaded';
COMMENT ON COLUMN plugmon.audit.status IS 'The HTTP status; a reload: 200 applied, 500 refused';
CREATE INDEX audit_at ON plugmon.audit (at);

-- plugmon.maintain() as migration 4 left it, then step 5: the audit rows recorded before
-- now_ts - retention are deleted (action 'prune', rows = rows deleted). The audit trail follows
-- the store's retention (postgres_retention, 30 days by default) like the alert history: one age
-- for everything the store keeps, which a reload changes for all tables alike. Wrapping the
-- previous function (renamed) rather than copying its body keeps one definition of steps 1 to 4.
ALTER FUNCTION plugmon.maintain(timestamptz, integer, interval, interval) RENAME TO _maintain_v4;

CREATE FUNCTION plugmon.maintain(now_ts timestamptz, premake_days integer, downsample_after interval,
                                 retention interval)
    RETURNS TABLE (action text, object text, rows bigint)
    LANGUAGE plpgsql SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    pruned bigint;
BEGIN
    RETURN QUERY SELECT * FROM plugmon._maintain_v4(now_ts, premake_days, downsample_after, retention);
    DELETE FROM plugmon.audit AS a WHERE a.at < now_ts - retention;
    GET DIAGNOSTICS pruned = ROW_COUNT;
    IF pruned > 0 THEN
        RETURN QUERY SELECT 'prune'::text, 'plugmon.audit'::text, pruned;
    END IF;
END
$$;
COMMENT ON FUNCTION plugmon.maintain(timestamptz, integer, interval, interval) IS
    'Periodic upkeep: partitions ahead, downsampling, retention of every table (plugmon.audit included); see migrations 3, 4 and 7';
