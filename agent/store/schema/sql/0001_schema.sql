-- plugmon schema version 1: the rollup, slow-query, resource, alert and write-ledger tables, and the views over them.
--
-- Time-series tables are range-partitioned on their time column: raw tables by UTC day
-- (<table>_pYYYYMMDD), the hourly rollups by UTC month (<table>_pYYYYMM). Partitions are made by
-- plugmon.ensure_partitions() and dropped by plugmon.maintain() (migration 3). There is no default
-- partition: a row for a day nobody prepared fails loudly instead of landing somewhere unbounded.
-- A day's query and execution rollups live in exactly one place: the raw table until the day is
-- downsampled, then the _1h table; the *_all views read both.

-- 10-second (bucket_seconds) query rollups per host, plugin, operation, table and tenant.
CREATE TABLE plugmon.query_rollups (
    bucket_start   timestamptz NOT NULL,
    bucket_seconds integer     NOT NULL,
    host           text        NOT NULL,
    plugin         text        NOT NULL,
    op             text        NOT NULL,
    tbl            text        NOT NULL,
    tenant         text        NOT NULL,
    calls          bigint      NOT NULL,
    errors         bigint      NOT NULL,
    rows           bigint      NOT NULL,
    total_ns       bigint      NOT NULL,
    min_ns         bigint      NOT NULL,
    max_ns         bigint      NOT NULL,
    p50_ns         bigint      NOT NULL,
    p95_ns         bigint      NOT NULL,
    p99_ns         bigint      NOT NULL,
    sketch         bytea       NOT NULL,
    PRIMARY KEY (bucket_start, host, plugin, op, tbl, tenant)
) PARTITION BY RANGE (bucket_start);
COMMENT ON TABLE plugmon.query_rollups IS
    'Query rollups per window (bucket_seconds, normally 10); daily partitions; moved into query_rollups_1h by plugmon.maintain()';
COMMENT ON COLUMN plugmon.query_rollups.sketch IS
    'DDSketch of the durations in ns, encoding version 1 (agent/sketch.hpp); merge with plugmon.sketch_merge()';

-- The same series downsampled to hours: the sums of a day's windows and their merged sketch.
-- Same columns, key and comments (LIKE … INCLUDING ALL), so the two cannot drift apart.
CREATE TABLE plugmon.query_rollups_1h (LIKE plugmon.query_rollups INCLUDING ALL)
    PARTITION BY RANGE (bucket_start);
COMMENT ON TABLE plugmon.query_rollups_1h IS
    'Hourly query rollups (bucket_seconds = 3600) written by plugmon.maintain(); monthly partitions';

-- Plugin executions (calls into the plugin, not its queries) per window.
CREATE TABLE plugmon.execution_rollups (
    bucket_start   timestamptz NOT NULL,
    bucket_seconds integer     NOT NULL,
    host           text        NOT NULL,
    plugin         text        NOT NULL,
    tenant         text        NOT NULL,
    calls          bigint      NOT NULL,
    errors         bigint      NOT NULL,
    wall_ns        bigint      NOT NULL,
    cpu_ns         bigint      NOT NULL,
    PRIMARY KEY (bucket_start, host, plugin, tenant)
) PARTITION BY RANGE (bucket_start);
COMMENT ON TABLE plugmon.execution_rollups IS
    'Plugin execution rollups per window; daily partitions; moved into execution_rollups_1h by plugmon.maintain()';

CREATE TABLE plugmon.execution_rollups_1h (LIKE plugmon.execution_rollups INCLUDING ALL)
    PARTITION BY RANGE (bucket_start);
COMMENT ON TABLE plugmon.execution_rollups_1h IS
    'Hourly execution rollups (bucket_seconds = 3600) written by plugmon.maintain(); monthly partitions';

-- Sampled slow queries, one row each.
CREATE TABLE plugmon.slow_queries (
    at          timestamptz NOT NULL,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    plugin      text        NOT NULL,
    op          text        NOT NULL,
    tbl         text        NOT NULL,
    tenant      text        NOT NULL,
    fingerprint bigint      NOT NULL,
    statement   text        NOT NULL,
    duration_ns bigint      NOT NULL,
    rows        bigint      NOT NULL,
    error       boolean     NOT NULL
) PARTITION BY RANGE (at);
COMMENT ON COLUMN plugmon.slow_queries.fingerprint IS
    'The statement fingerprint, a uint64 stored as the signed bigint with the same bits';
COMMENT ON COLUMN plugmon.slow_queries.statement IS
    'The normalised statement text; empty when the agent did not keep it';
CREATE INDEX slow_queries_plugin_at ON plugmon.slow_queries (plugin, at);

-- Per-process and per-plugin resource samples.
CREATE TABLE plugmon.resource_samples (
    at                   timestamptz NOT NULL,
    host                 text        NOT NULL,
    pid                  integer     NOT NULL,
    process              text        NOT NULL,
    plugin               text        NOT NULL,
    rss_bytes            bigint      NOT NULL,
    cpu_ns               bigint      NOT NULL,
    open_fds             bigint      NOT NULL,
    threads              bigint      NOT NULL,
    read_bytes           bigint      NOT NULL,
    write_bytes          bigint      NOT NULL,
    heap_allocated_bytes bigint      NOT NULL,
    heap_freed_bytes     bigint      NOT NULL
) PARTITION BY RANGE (at);
COMMENT ON COLUMN plugmon.resource_samples.plugin IS
    'The plugin the sample is about; empty for the whole process';
CREATE INDEX resource_samples_host_pid_at ON plugmon.resource_samples (host, pid, at);
CREATE INDEX resource_samples_plugin_at ON plugmon.resource_samples (plugin, at) WHERE plugin <> '';

-- Alerts raised and resolved by the alert engine.
CREATE TABLE plugmon.alerts (
    id          bigserial        PRIMARY KEY,
    host        text             NOT NULL,
    rule        text             NOT NULL,
    plugin      text             NOT NULL DEFAULT '',
    severity    text             NOT NULL,
    state       text             NOT NULL CHECK (state IN ('firing', 'resolved')),
    value       double precision,
    started_at  timestamptz      NOT NULL,
    resolved_at timestamptz,
    labels      jsonb            NOT NULL DEFAULT '{}',
    annotations jsonb            NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_firing ON plugmon.alerts (host, rule, plugin) WHERE state = 'firing';
CREATE INDEX alerts_started_at ON plugmon.alerts (started_at);

-- The writer's idempotency ledger: one row per batch committed, so a replayed batch is skipped.
CREATE TABLE plugmon.write_batches (
    host         text        NOT NULL,
    run_id       bigint      NOT NULL,
    seq          bigint      NOT NULL,
    bucket_start timestamptz NOT NULL,
    rows         integer     NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, run_id, seq)
);
COMMENT ON TABLE plugmon.write_batches IS
    'Batches committed by writers, keyed by (host, run_id, seq); pruned by plugmon.maintain() after the retention';
CREATE INDEX write_batches_written_at ON plugmon.write_batches (written_at);

-- Raw and hourly rows together. A day is in exactly one of the two tables, so nothing is counted twice.
CREATE VIEW plugmon.query_rollups_all AS
    SELECT bucket_start, bucket_seconds, host, plugin, op, tbl, tenant, calls, errors, rows, total_ns,
           min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch
      FROM plugmon.query_rollups
    UNION ALL
    SELECT bucket_start, bucket_seconds, host, plugin, op, tbl, tenant, calls, errors, rows, total_ns,
           min_ns, max_ns, p50_ns, p95_ns, p99_ns, sketch
      FROM plugmon.query_rollups_1h;

CREATE VIEW plugmon.execution_rollups_all AS
    SELECT bucket_start, bucket_seconds, host, plugin, tenant, calls, errors, wall_ns, cpu_ns
      FROM plugmon.execution_rollups
    UNION ALL
    SELECT bucket_start, bucket_seconds, host, plugin, tenant, calls, errors, wall_ns, cpu_ns
      FROM plugmon.execution_rollups_1h;

-- Usage per UTC hour, tenant and plugin: query and execution totals side by side, zeros where
-- one side has no rows. For a time range prefer plugmon.usage(from, to): it filters before grouping.
CREATE VIEW plugmon.usage_hourly AS
    WITH q AS (
        SELECT date_trunc('hour', bucket_start, 'UTC') AS hour, tenant, plugin,
               sum(calls) AS queries, sum(errors) AS query_errors, sum(total_ns) AS query_ns,
               sum(rows) AS rows
          FROM plugmon.query_rollups_all
         GROUP BY 1, 2, 3
    ), e AS (
        SELECT date_trunc('hour', bucket_start, 'UTC') AS hour, tenant, plugin,
               sum(calls) AS executions, sum(errors) AS execution_errors, sum(cpu_ns) AS cpu_ns,
               sum(wall_ns) AS wall_ns
          FROM plugmon.execution_rollups_all
         GROUP BY 1, 2, 3
    )
    SELECT hour, tenant, plugin,
           coalesce(q.queries, 0)::bigint          AS queries,
           coalesce(q.query_errors, 0)::bigint     AS query_errors,
           coalesce(q.query_ns, 0)::bigint         AS query_ns,
           coalesce(q.rows, 0)::bigint             AS rows,
           coalesce(e.executions, 0)::bigint       AS executions,
           coalesce(e.execution_errors, 0)::bigint AS execution_errors,
           coalesce(e.cpu_ns, 0)::bigint           AS cpu_ns,
           coalesce(e.wall_ns, 0)::bigint          AS wall_ns
      FROM q FULL OUTER JOIN e USING (hour, tenant, plugin);
