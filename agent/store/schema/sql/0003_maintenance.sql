-- plugmon schema version 3: partition upkeep, downsampling to hourly rollups, retention, and usage totals.
--
-- All date arithmetic is in UTC (the functions set TimeZone themselves), so partition boundaries
-- and hours do not depend on the session. Advisory locks use the key pair (0x706d6f6e 'pmon', n):
-- n = 1 migrations (the agent), 2 partition creation, 3 maintenance.

-- The partitioned tables: partition period, and the hourly table a raw one is downsampled into.
CREATE FUNCTION plugmon._partitioned_tables() RETURNS TABLE (parent text, period text, hourly text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    VALUES ('query_rollups', 'day', 'query_rollups_1h'),
           ('query_rollups_1h', 'month', NULL),
           ('execution_rollups', 'day', 'execution_rollups_1h'),
           ('execution_rollups_1h', 'month', NULL),
           ('slow_queries', 'day', NULL),
           ('resource_samples', 'day', NULL)
$$;

-- Every partition of those tables with its bounds, read back from the catalog (so a partition
-- made by hand under another name is still found). Partitions without two finite bounds are left out.
CREATE FUNCTION plugmon._partitions()
    RETURNS TABLE (parent text, period text, hourly text, part text, lower_ts timestamptz, upper_ts timestamptz)
    LANGUAGE sql STABLE SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
    SELECT t.parent, t.period, t.hourly, c.relname::text, b[1]::timestamptz, b[2]::timestamptz
      FROM plugmon._partitioned_tables() AS t
      JOIN pg_class AS p ON p.relname = t.parent
       AND p.relnamespace = 'plugmon'::regnamespace
      JOIN pg_inherits AS i ON i.inhparent = p.oid
      JOIN pg_class AS c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                     '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') AS b
     WHERE b IS NOT NULL
$$;

-- Creates the partition of `parent` for the period starting at `start` (UTC midnight, or the first
-- of a month) unless one of that name exists; returns its name when it made it, NULL otherwise.
CREATE FUNCTION plugmon._create_partition(parent text, period text, start timestamptz) RETURNS text
    LANGUAGE plpgsql SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    name constant text := parent || '_p' || to_char(start, CASE period WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);
BEGIN
    IF to_regclass(format('plugmon.%I', name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE plugmon.%I PARTITION OF plugmon.%I FOR VALUES FROM (%L) TO (%L)',
                   name, parent, start, start + ('1 ' || period)::interval);
    RETURN name;
END
$$;

-- Creates every missing partition of every partitioned table covering [from_ts, to_ts]; returns
-- the names made. Takes the partition lock only when something is missing.
CREATE FUNCTION plugmon._ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS SETOF text
    LANGUAGE plpgsql SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    t record;
    made text;
    locked boolean := false;
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL OR to_ts < from_ts THEN
        RETURN;
    END IF;
    FOR t IN
        SELECT p.parent, p.period, s.start
          FROM plugmon._partitioned_tables() AS p
         CROSS JOIN LATERAL generate_series(date_trunc(p.period, from_ts), date_trunc(p.period, to_ts),
                                            ('1 ' || p.period)::interval) AS s (start)
         ORDER BY s.start, p.parent
    LOOP
        CONTINUE WHEN to_regclass(format('plugmon.%I', t.parent || '_p'
            || to_char(t.start, CASE t.period WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END))) IS NOT NULL;
        IF NOT locked THEN
            -- Two agents creating the same partition at once would collide in the catalog.
            PERFORM pg_advisory_xact_lock(1886219118, 2);
            locked := true;
        END IF;
        made := plugmon._create_partition(t.parent, t.period, t.start);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
    END LOOP;
END
$$;

-- Creates (if missing) every partition of every partitioned plugmon table that covers
-- [from_ts, to_ts]: daily ones named <table>_pYYYYMMDD, monthly ones <table>_pYYYYMM, UTC
-- boundaries. Returns how many it created. Idempotent; concurrent callers serialise on an advisory
-- lock, taken only when a partition is missing and held to the end of the transaction. Call it in
-- a transaction of its own, before inserting: creating a partition locks its parent exclusively.
CREATE FUNCTION plugmon.ensure_partitions(from_ts timestamptz, to_ts timestamptz) RETURNS integer
    LANGUAGE sql
    RETURN (SELECT count(*)::integer FROM plugmon._ensure_partitions(from_ts, to_ts));

-- Moves one daily partition of query_rollups or execution_rollups into the hourly table: sums,
-- min of min, max of max, merged sketch with its quantiles recomputed. An hourly row that exists
-- already (the day was downsampled before, and late rows recreated it) is added to, never
-- replaced. Returns the number of hourly rows written.
CREATE FUNCTION plugmon._downsample(parent text, part text) RETURNS bigint
    LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    written bigint;
BEGIN
    IF parent = 'query_rollups' THEN
        EXECUTE format($q$
            INSERT INTO plugmon.query_rollups_1h AS t
                   (bucket_start, bucket_seconds, host, plugin, op, tbl, tenant, calls, errors, rows,
                    total_ns, min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch)
            SELECT g.hour, 3600, g.host, g.plugin, g.op, g.tbl, g.tenant, g.calls, g.errors, g.rows,
                   g.total_ns, g.min_ns, g.max_ns, g.p[1], g.p[2], g.p[3], g.sketch
              FROM (SELECT h.*, plugmon.sketch_quantiles(h.sketch, '{0.5,0.95,0.99}') AS p
                      FROM (SELECT date_trunc('hour', r.bucket_start) AS hour, r.host, r.plugin, r.op,
                                   r.tbl, r.tenant, sum(r.calls)::bigint AS calls,
                                   sum(r.errors)::bigint AS errors, sum(r.rows)::bigint AS rows,
                                   sum(r.total_ns)::bigint AS total_ns, min(r.min_ns) AS min_ns,
                                   max(r.max_ns) AS max_ns, plugmon.sketch_merge(r.sketch) AS sketch
                              FROM plugmon.%I AS r
                             GROUP BY 1, 2, 3, 4, 5, 6) AS h) AS g
            ON CONFLICT (bucket_start, host, plugin, op, tbl, tenant) DO UPDATE SET
                calls = t.calls + excluded.calls,
                errors = t.errors + excluded.errors,
                rows = t.rows + excluded.rows,
                total_ns = t.total_ns + excluded.total_ns,
                min_ns = least(t.min_ns, excluded.min_ns),
                max_ns = greatest(t.max_ns, excluded.max_ns),
                p50_ns = plugmon.sketch_quantile(plugmon.sketch_union(t.sketch, excluded.sketch), 0.5),
                p95_ns = plugmon.sketch_quantile(plugmon.sketch_union(t.sketch, excluded.sketch), 0.95),
                p99_ns = plugmon.sketch_quantile(plugmon.sketch_union(t.sketch, excluded.sketch), 0.99),
                sketch = plugmon.sketch_union(t.sketch, excluded.sketch)
            $q$, part);
    ELSIF parent = 'execution_rollups' THEN
        EXECUTE format($q$
            INSERT INTO plugmon.execution_rollups_1h AS t
                   (bucket_start, bucket_seconds, host, plugin, tenant, calls, errors, wall_ns, cpu_ns)
            SELECT date_trunc('hour', r.bucket_start), 3600, r.host, r.plugin, r.tenant,
                   sum(r.calls)::bigint, sum(r.errors)::bigint, sum(r.wall_ns)::bigint,
                   sum(r.cpu_ns)::bigint
              FROM plugmon.%I AS r
             GROUP BY 1, 3, 4, 5
            ON CONFLICT (bucket_start, host, plugin, tenant) DO UPDATE SET
                calls = t.calls + excluded.calls,
                errors = t.errors + excluded.errors,
                wall_ns = t.wall_ns + excluded.wall_ns,
                cpu_ns = t.cpu_ns + excluded.cpu_ns
            $q$, part);
    ELSE
        RAISE EXCEPTION 'plugmon._downsample: % has no hourly table', parent;
    END IF;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- Periodic upkeep, in one transaction (the caller's), serialised across agents by an advisory lock:
--   1. creates the partitions from the day before now_ts (or the first day not yet due for
--      downsampling, if later) to premake_days after it (action 'create_partition');
--   2. downsamples every daily partition of query_rollups and execution_rollups whose range ends
--      at or before now_ts - downsample_after into the hourly table, adding to hourly rows that
--      exist, then drops it (action 'downsample', rows = hourly rows written);
--   3. drops every partition of every table whose range ends at or before now_ts - retention
--      (action 'drop_partition', rows NULL) and deletes write_batches entries written before
--      now_ts - retention (action 'prune', rows = entries deleted).
-- Returns one row per action taken. While it downsamples, writers to the raw table wait (their
-- rows would otherwise land in a partition about to be dropped); readers wait only from the first
-- drop to the commit. A writer that then finds no partition for a late row recreates it with
-- ensure_partitions(), and the next maintain() adds that row to the hourly one.
CREATE FUNCTION plugmon.maintain(now_ts timestamptz, premake_days integer, downsample_after interval,
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
END
$$;

-- Totals per (tenant, plugin) over the buckets with from_ts <= bucket_start < to_ts, raw and
-- hourly alike; zeros (not NULL) where a plugin had queries but no executions or the reverse.
CREATE FUNCTION plugmon.usage(from_ts timestamptz, to_ts timestamptz)
    RETURNS TABLE (tenant text, plugin text, queries bigint, query_errors bigint, query_ns bigint,
                   rows bigint, executions bigint, execution_errors bigint, cpu_ns bigint,
                   wall_ns bigint)
    LANGUAGE sql STABLE AS $$
    WITH q AS (
        SELECT r.tenant, r.plugin, sum(r.calls) AS queries, sum(r.errors) AS query_errors,
               sum(r.total_ns) AS query_ns, sum(r.rows) AS rows
          FROM plugmon.query_rollups_all AS r
         WHERE r.bucket_start >= from_ts AND r.bucket_start < to_ts
         GROUP BY 1, 2
    ), e AS (
        SELECT r.tenant, r.plugin, sum(r.calls) AS executions, sum(r.errors) AS execution_errors,
               sum(r.cpu_ns) AS cpu_ns, sum(r.wall_ns) AS wall_ns
          FROM plugmon.execution_rollups_all AS r
         WHERE r.bucket_start >= from_ts AND r.bucket_start < to_ts
         GROUP BY 1, 2
    )
    SELECT tenant, plugin,
           coalesce(q.queries, 0)::bigint, coalesce(q.query_errors, 0)::bigint,
           coalesce(q.query_ns, 0)::bigint, coalesce(q.rows, 0)::bigint,
           coalesce(e.executions, 0)::bigint, coalesce(e.execution_errors, 0)::bigint,
           coalesce(e.cpu_ns, 0)::bigint, coalesce(e.wall_ns, 0)::bigint
      FROM q FULL OUTER JOIN e USING (tenant, plugin)
     ORDER BY tenant, plugin
$$;
