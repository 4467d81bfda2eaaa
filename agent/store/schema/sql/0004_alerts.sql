-- plugmon schema version 4: alert history (alert_events), the alerts' current state (alerts, restructured), and their retention.
--
-- The alert engine numbers every change of an alert (seq, increasing across restarts); the agent's
-- store writes them, through its spool, in the transaction of a batch. Both tables are idempotent
-- on their own, beside the write_batches ledger: an event is keyed by (host, fingerprint, seq), and
-- an alert's row only ever moves to a higher seq, so replaying or reordering batches is harmless.

-- Every change of every alert, as the engine made it: one row per (host, fingerprint, seq).
CREATE TABLE plugmon.alert_events (
    host        text             NOT NULL,
    seq         bigint           NOT NULL,
    at          timestamptz      NOT NULL,
    fingerprint text             NOT NULL,
    rule        text             NOT NULL,
    episode     text             NOT NULL,
    event       text             NOT NULL,
    state       text             NOT NULL,
    severity    text             NOT NULL,
    value       double precision NOT NULL,
    detail      text             NOT NULL,
    labels      jsonb            NOT NULL DEFAULT '{}',
    annotations jsonb            NOT NULL DEFAULT '{}',
    ack         jsonb,
    PRIMARY KEY (host, fingerprint, seq)
);
COMMENT ON TABLE plugmon.alert_events IS
    'Alert history: one row per change (pending, firing, resolved, inactive, level, acknowledged, unacknowledged, notified, silence); pruned by plugmon.maintain() after the retention';
COMMENT ON COLUMN plugmon.alert_events.seq IS
    'The engine''s sequence number, increasing across agent restarts; with host and fingerprint the row''s identity';
COMMENT ON COLUMN plugmon.alert_events.fingerprint IS
    'The alert''s identity (16 hex digits); empty for a silence event';
COMMENT ON COLUMN plugmon.alert_events.state IS
    'The alert''s state after the change: inactive, pending, firing or resolved';
COMMENT ON COLUMN plugmon.alert_events.ack IS
    'The acknowledgement after the change, {by, comment, at, expires_at}; NULL when not acknowledged';
CREATE INDEX alert_events_at ON plugmon.alert_events (at);

-- plugmon.alerts (migration 1) was never written by any release: it becomes the current state of
-- each alert. Should a deployment hold rows in it anyway (written by hand), they are kept aside
-- as plugmon.alerts_0001 instead of being dropped.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM plugmon.alerts) THEN
        ALTER TABLE plugmon.alerts RENAME TO alerts_0001;
        ALTER INDEX plugmon.alerts_pkey RENAME TO alerts_0001_pkey;
        ALTER INDEX plugmon.alerts_firing RENAME TO alerts_0001_firing;
        ALTER INDEX plugmon.alerts_started_at RENAME TO alerts_0001_started_at;
        ALTER SEQUENCE plugmon.alerts_id_seq RENAME TO alerts_0001_id_seq;
    ELSE
        DROP TABLE plugmon.alerts;
    END IF;
END
$$;

-- The latest state of each alert: one row per (host, fingerprint), from its event of highest seq.
CREATE TABLE plugmon.alerts (
    host        text             NOT NULL,
    fingerprint text             NOT NULL,
    rule        text             NOT NULL,
    episode     text             NOT NULL,
    state       text             NOT NULL,
    severity    text             NOT NULL,
    value       double precision NOT NULL,
    labels      jsonb            NOT NULL DEFAULT '{}',
    annotations jsonb            NOT NULL DEFAULT '{}',
    ack         jsonb,
    active_at   timestamptz,
    fired_at    timestamptz,
    resolved_at timestamptz,
    updated_at  timestamptz      NOT NULL,
    last_seq    bigint           NOT NULL,
    PRIMARY KEY (host, fingerprint)
);
COMMENT ON TABLE plugmon.alerts IS
    'The current state of each alert (the row of its latest alert_events entry); written with ON CONFLICT … WHERE last_seq < excluded.last_seq, so it never goes back';
COMMENT ON COLUMN plugmon.alerts.state IS 'inactive, pending, firing or resolved';
COMMENT ON COLUMN plugmon.alerts.active_at IS
    'When the condition first held in this episode (pending since); NULL: not yet';
COMMENT ON COLUMN plugmon.alerts.fired_at IS
    'When the alert started firing in this episode (Alertmanager''s startsAt; was started_at in version 1); NULL: not yet';
COMMENT ON COLUMN plugmon.alerts.resolved_at IS 'When the alert resolved; NULL: not resolved';
COMMENT ON COLUMN plugmon.alerts.updated_at IS 'The time of the change recorded in last_seq';
COMMENT ON COLUMN plugmon.alerts.last_seq IS 'The seq of the alert_events row this state comes from';
CREATE INDEX alerts_open ON plugmon.alerts (host, rule) WHERE state IN ('pending', 'firing');
CREATE INDEX alerts_updated_at ON plugmon.alerts (updated_at);

-- Migration 3's plugmon.maintain() with step 4 added (pruning the alert tables).
--
-- Periodic upkeep, in one transaction (the caller's), serialised across agents by an advisory lock:
--   1. creates the partitions from the day before now_ts (or the first day not yet due for
--      downsampling, if later) to premake_days after it (action 'create_partition');
--   2. downsamples every daily partition of query_rollups and execution_rollups whose range ends
--      at or before now_ts - downsample_after into the hourly table, adding to hourly rows that
--      exist, then drops it (action 'downsample', rows = hourly rows written);
--   3. drops every partition of every table whose range ends at or before now_ts - retention
--      (action 'drop_partition', rows NULL) and deletes write_batches entries written before
--      now_ts - retention (action 'prune', rows = entries deleted);
--   4. deletes the alert_events that happened before now_ts - retention, and the alerts that are
--      resolved or inactive and have not changed since then (action 'prune', rows = rows deleted).
-- Returns one row per action taken. While it downsamples, writers to the raw table wait (their
-- rows would otherwise land in a partition about to be dropped); readers wait only from the first
-- drop to the commit. A writer that then finds no partition for a late row recreates it with
-- ensure_partitions(), and the next maintain() adds that row to the hourly one.
CREATE OR REPLACE FUNCTION plugmon.maintain(now_ts timestamptz, premake_days integer, downsample_after interval,
                                 retention interval)
    RETURNS TABLE (action text, object text, rows bigint)
    LANGUAGE plpgsql SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    p record;
    made text;
    written bigint;
    locked_parent text := '';
BEGIN
    IF now_ts IS NULL OR premake_days IS NULL OR downsample_after IS NULL OR retention IS NULL THEN
        RAISE EXCEPTION 'plugmon.maintain: every argument is required';
    END IF;
    IF premake_days < 0 THEN
        RAISE EXCEPTION 'plugmon.maintain: premake_days must be >= 0 (got %)', premake_days;
    END IF;
    PERFORM pg_advisory_xact_lock(1886219118, 3);

    -- From yesterday, but not a day that step 2 would downsample and drop again at once.
    FOR made IN
        SELECT * FROM plugmon._ensure_partitions(
            greatest(date_trunc('day', now_ts) - interval '1 day', date_trunc('day', now_ts - downsample_after)),
            date_trunc('day', now_ts) + premake_days * interval '1 day')
    LOOP
        RETURN QUERY SELECT 'create_partition'::text, 'plugmon.' || made, NULL::bigint;
    END LOOP;

    FOR p IN
        SELECT * FROM plugmon._partitions() AS x
         WHERE x.hourly IS NOT NULL AND x.upper_ts <= now_ts - downsample_after
         ORDER BY x.parent, x.lower_ts
    LOOP
        IF p.parent <> locked_parent THEN
            -- Writers wait from here to the commit; readers go on until the drop below.
            EXECUTE format('LOCK TABLE plugmon.%I IN SHARE ROW EXCLUSIVE MODE', p.parent);
            locked_parent := p.parent;
        END IF;
        -- The month (or months) of the hourly table this day falls in.
        FOR made IN
            SELECT plugmon._create_partition(p.hourly, 'month', m)
              FROM generate_series(date_trunc('month', p.lower_ts),
                                   date_trunc('month', p.upper_ts - interval '1 microsecond'),
                                   interval '1 month') AS m
        LOOP
            IF made IS NOT NULL THEN
                RETURN QUERY SELECT 'create_partition'::text, 'plugmon.' || made, NULL::bigint;
            END IF;
        END LOOP;
        written := plugmon._downsample(p.parent, p.part);
        EXECUTE format('DROP TABLE plugmon.%I', p.part);
        RETURN QUERY SELECT 'downsample'::text, 'plugmon.' || p.part, written;
    END LOOP;

    FOR p IN
        SELECT * FROM plugmon._partitions() AS x
         WHERE x.upper_ts <= now_ts - retention
         ORDER BY x.parent, x.lower_ts
    LOOP
        EXECUTE format('DROP TABLE plugmon.%I', p.part);
        RETURN QUERY SELECT 'drop_partition'::text, 'plugmon.' || p.part, NULL::bigint;
    END LOOP;

    DELETE FROM plugmon.write_batches AS w WHERE w.written_at < now_ts - retention;
    GET DIAGNOSTICS written = ROW_COUNT;
    IF written > 0 THEN
        RETURN QUERY SELECT 'prune'::text, 'plugmon.write_batches'::text, written;
    END IF;

    DELETE FROM plugmon.alert_events AS e WHERE e.at < now_ts - retention;
    GET DIAGNOSTICS written = ROW_COUNT;
    IF written > 0 THEN
        RETURN QUERY SELECT 'prune'::text, 'plugmon.alert_events'::text, written;
    END IF;
    DELETE FROM plugmon.alerts AS a
     WHERE a.state IN ('resolved', 'inactive') AND a.updated_at < now_ts - retention;
    GET DIAGNOSTICS written = ROW_COUNT;
    IF written > 0 THEN
        RETURN QUERY SELECT 'prune'::text, 'plugmon.alerts'::text, written;
    END IF;
END
$$;
