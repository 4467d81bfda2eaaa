// Slow queries and statements: the samples the agents stored, grouped by normalised statement.
local g = import 'g.libsonnet';
local c = import 'common.libsonnet';

local where = |||
  WHERE $__timeFilter(at) AND host IN ($host) AND plugin IN ($plugin) AND tenant IN ($tenant)
         AND ('$statement' = '' OR lpad(to_hex(fingerprint), 16, '0') = '$statement')
|||;

local statementVar = {
  name: 'statement',
  label: 'Statement fingerprint',
  description: '16 hex digits; empty: every statement',
  type: 'textbox',
  query: '',
  current: { selected: false, text: '', value: '' },
  options: [],
  hide: 0,
};

g.dashboard(
  c.uid.slow,
  'plugmon / Slow queries and statements',
  'Queries at or above their plugin\'s slow_query_threshold, as sampled by the agents into plugmon.slow_queries: totals per normalised statement, and the samples themselves.',
  uses=['prom', 'pg'],
  tags=['slow-queries'],
  variables=[g.var.prometheus, g.var.postgres, c.vars.job, c.vars.instance, c.vars.slowHost, c.vars.slowPlugin, c.vars.slowTenant, statementVar],
  panels=[
    g.row('Summary'),
    g.stat('Slow queries stored', [g.sql('SELECT count(*) AS slow_queries FROM plugmon.slow_queries\n %s' % where)], w=4),
    g.stat('Statements', [g.sql('SELECT count(DISTINCT fingerprint) AS statements FROM plugmon.slow_queries\n %s' % where)], w=4),
    g.stat('Slowest', [g.sql('SELECT coalesce(max(duration_ns), 0) / 1e9 AS slowest FROM plugmon.slow_queries\n %s' % where)], unit='s', w=4),
    g.stat('Slow queries / s (agents)', [g.prom('sum(%s)' % c.rate('plugmon_agent_slow_queries_total', c.agent))], unit='reqps', w=6,
           desc='Every query at or above the threshold, counted by the agents (not all are sampled into the store).'),
    g.stat('Not stored / s (agents)', [g.prom('sum(%s)' % c.rate('plugmon_agent_slow_queries_unstored_total', c.agent))], unit='reqps', w=6,
           desc='Slow queries beyond the per-window sample cap: counted, not stored.'),
    g.timeseries('Slow queries per interval by plugin', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(at, $__interval), plugin AS metric, count(*) AS slow
        FROM plugmon.slow_queries
       %s
       GROUP BY 1, 2
       ORDER BY 1
    ||| % where)], stack=true),
    g.timeseries('Slow query duration (samples)', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(at, $__interval), max(duration_ns) / 1e9 AS max,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ns) / 1e9 AS median
        FROM plugmon.slow_queries
       %s
       GROUP BY 1
       ORDER BY 1
    ||| % where)], unit='s'),

    g.row('Statements'),
    g.table('Per statement (time range)', [g.sql(|||
      SELECT lpad(to_hex(fingerprint), 16, '0') AS fingerprint, plugin,
             count(*) AS samples, count(*) FILTER (WHERE error) AS errors,
             sum(duration_ns) / 1e9 AS total_time, avg(duration_ns) / 1e9 AS mean,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) / 1e9 AS p99,
             max(duration_ns) / 1e9 AS max, sum(rows) AS rows, count(DISTINCT host) AS hosts,
             max(at) AS last_seen, min(statement) AS statement
        FROM plugmon.slow_queries
       %s
       GROUP BY fingerprint, plugin
       ORDER BY sum(duration_ns) DESC
       LIMIT 50
    ||| % where)], h=9, columns={ total_time: 's', mean: 's', p99: 's', max: 's', last_seen: 'dateTimeAsIso' }, sortBy='total_time'),
    g.bargauge('Top statements by total slow time', [g.sql(|||
      SELECT left(min(statement), 80) || ' [' || lpad(to_hex(fingerprint), 16, '0') || ']' AS statement,
             sum(duration_ns) / 1e9 AS total_time
        FROM plugmon.slow_queries
       %s
       GROUP BY fingerprint
       ORDER BY 2 DESC
       LIMIT 10
    ||| % where)], unit='s'),
    g.table('Tables behind the slow queries (rollups, sketch percentiles)', [g.sql(|||
      SELECT plugin, op, tbl AS "table", sum(calls) AS calls, sum(total_ns) / 1e9 AS total_time,
             plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) / 1e9 AS p99,
             plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.999) / 1e9 AS p999,
             max(max_ns) / 1e9 AS max
        FROM plugmon.query_rollups_all
       WHERE $__timeFilter(bucket_start) AND host IN ($host) AND plugin IN ($plugin) AND tenant IN ($tenant)
       GROUP BY plugin, op, tbl
       ORDER BY max(max_ns) DESC
       LIMIT 20
    |||)], w=12, columns={ total_time: 's', p99: 's', p999: 's', max: 's' }),

    g.row('Samples'),
    g.withColumnLink(g.table('Slow query samples (newest first)', [g.sql(|||
      SELECT at AS "time", host, pid, plugin, tenant, op, tbl AS "table", duration_ns / 1e9 AS duration,
             rows, error, lpad(to_hex(fingerprint), 16, '0') AS fingerprint, statement
        FROM plugmon.slow_queries
       %s
       ORDER BY at DESC
       LIMIT 200
    ||| % where)], h=12, columns={ duration: 's' }), 'plugin',
      g.link('Plugin detail', c.uid.plugin, '&var-plugin=${__data.fields.plugin}')),
  ],
)
