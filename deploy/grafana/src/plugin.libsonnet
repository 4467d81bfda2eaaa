// Plugin detail: one plugin on the chosen agents and tenants; Prometheus now, PostgreSQL for history.
local g = import 'g.libsonnet';
local c = import 'common.libsonnet';
local s = c.plug;
local pl = c.agent + ', plugin="$plugin"';

local queries(sel) = c.rate('plugmon_queries_total', sel);
local q(p) = c.quantile(p, 'plugmon_query_duration_seconds', s);
// The PostgreSQL side of the same selection.
local rollups = |||
  FROM plugmon.query_rollups_all
       WHERE $__timeFilter(bucket_start) AND host IN ($host) AND plugin = '$plugin' AND tenant IN ($tenant)
|||;

g.dashboard(
  c.uid.plugin,
  'plugmon / Plugin detail',
  'One plugin: query rate, errors and latency by operation and table, executions, CPU, heap and pool; stored rollups, percentiles merged from the sketches, and its slow queries.',
  uses=['prom', 'pg'],
  tags=['plugin'],
  variables=[g.var.prometheus, g.var.postgres, c.vars.job, c.vars.instance, c.vars.pluginOne, c.vars.tenant, c.vars.host],
  panels=[
    g.row('$plugin now (Prometheus)'),
    g.stat('Queries / s', [g.prom('sum(%s)' % queries(s))], unit='reqps'),
    g.stat('Error ratio', [g.prom('sum(%s) / sum(%s)' % [queries(s + ', status="error"'), queries(s)])], unit='percentunit',
           thresholds=g.thresholds([['green', null], ['orange', 0.01], ['red', 0.05]])),
    g.stat('p50', [g.prom(q(0.5))], unit='s'),
    g.stat('p95', [g.prom(q(0.95))], unit='s'),
    g.stat('p99', [g.prom(q(0.99))], unit='s'),
    g.stat('CPU', [g.prom('sum(%s)' % c.rate('plugmon_plugin_cpu_seconds_total', s))], unit='percentunit',
           desc='Thread CPU time inside executions per second (100 % = one core).'),
    g.timeseries('Queries / s by operation and table', [g.prom('sum by (op, table) (%s)' % queries(s), '{{op}} {{table}}')], unit='reqps', stack=true),
    g.timeseries('Errors / s by operation and table', [g.prom('sum by (op, table) (%s)' % queries(s + ', status="error"'), '{{op}} {{table}}')], unit='reqps', stack=true),
    g.timeseries('Query latency (Prometheus histograms)', [
      g.prom(q(0.5), 'p50'),
      g.prom(q(0.95), 'p95'),
      g.prom(q(0.99), 'p99'),
    ], unit='s', desc=c.md.promVsSketch),
    g.timeseries('Query p99 by table', [g.prom(c.quantile(0.99, 'plugmon_query_duration_seconds', s, 'table'), '{{table}}')], unit='s'),
    g.timeseries('Rows / s by table', [g.prom('sum by (table) (%s)' % c.rate('plugmon_query_rows_total', s), '{{table}}')], w=8),
    g.timeseries('Executions / s', [g.prom('sum by (status) (%s)' % c.rate('plugmon_executions_total', s), '{{status}}')], w=8),
    g.timeseries('Execution wall time', [
      g.prom(c.quantile(0.5, 'plugmon_execution_duration_seconds', s), 'p50'),
      g.prom(c.quantile(0.99, 'plugmon_execution_duration_seconds', s), 'p99'),
    ], unit='s', w=8),
    g.timeseries('CPU by tenant', [g.prom('sum by (tenant) (%s)' % c.rate('plugmon_plugin_cpu_seconds_total', s), '{{tenant}}')], unit='percentunit', w=8),
    g.timeseries('Heap held (plugmon::alloc)', [
      g.prom('sum(plugmon_plugin_heap_live_bytes{%s})' % pl, 'live'),
      g.prom('max(plugmon_plugin_leak_suspected{%s})' % pl, 'leak suspected'),
    ], unit='bytes', w=8, desc='Live heap bytes charged to the plugin; "leak suspected" is 1 when it grew steadily over leak_window.') {
      fieldConfig+: { overrides+: [{ matcher: { id: 'byName', options: 'leak suspected' }, properties: [{ id: 'unit', value: 'bool_yes_no' }, { id: 'custom.axisPlacement', value: 'right' }] }] },
    },
    g.timeseries('Pool connections', [g.prom('sum by (state) (plugmon_pool_connections{%s})' % pl, '{{state}}')], w=8, stack=true),
    g.timeseries('Plugin events / s', [g.prom('sum by (event) (%s)' % c.rate('plugmon_plugin_events_total', pl), '{{event}}')], w=24, h=6),

    g.row('$plugin history (PostgreSQL rollups)'),
    g.text('About these percentiles', c.md.promVsSketch, h=2),
    g.timeseries('Query latency (PostgreSQL sketches)', [g.sqlSeries(|||
      SELECT time, q[1] / 1e9 AS p50, q[2] / 1e9 AS p95, q[3] / 1e9 AS p99
        FROM (SELECT $__timeGroupAlias(bucket_start, $__interval),
                     plugmon.sketch_quantiles(plugmon.sketch_merge(sketch), ARRAY[0.5, 0.95, 0.99]::float8[]) AS q
                %s
               GROUP BY 1) AS w
       ORDER BY time
    ||| % rollups)], unit='s', desc=c.md.promVsSketch),
    g.timeseries('Calls and errors per window (PostgreSQL)', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(bucket_start, $__interval), sum(calls) AS calls, sum(errors) AS errors
        %s
       GROUP BY 1
       ORDER BY 1
    ||| % rollups)]),
    g.table('By operation and table (time range, PostgreSQL)', [g.sql(|||
      SELECT op, tbl AS "table", sum(calls) AS calls, sum(errors) AS errors,
             sum(errors)::float8 / nullif(sum(calls), 0) AS error_ratio, sum(rows) AS rows,
             sum(total_ns) / 1e9 AS total_time, sum(total_ns) / nullif(sum(calls), 0) / 1e9 AS mean,
             plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.5) / 1e9 AS p50,
             plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) / 1e9 AS p99,
             max(max_ns) / 1e9 AS max
        %s
       GROUP BY op, tbl
       ORDER BY sum(total_ns) DESC
    ||| % rollups)], columns={ error_ratio: 'percentunit', total_time: 's', mean: 's', p50: 's', p99: 's', max: 's' }, sortBy='total_time'),
    g.timeseries('Execution CPU and wall time per window (PostgreSQL)', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(bucket_start, $__interval), sum(cpu_ns) / 1e9 AS cpu, sum(wall_ns) / 1e9 AS wall
        FROM plugmon.execution_rollups_all
       WHERE $__timeFilter(bucket_start) AND host IN ($host) AND plugin = '$plugin' AND tenant IN ($tenant)
       GROUP BY 1
       ORDER BY 1
    |||)], unit='s', desc='Seconds of CPU and wall time spent in executions, summed per interval.'),
    g.timeseries('Heap held (PostgreSQL samples)', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(at, $__interval), host AS metric,
             max(heap_allocated_bytes - heap_freed_bytes) AS heap
        FROM plugmon.resource_samples
       WHERE $__timeFilter(at) AND host IN ($host) AND plugin = '$plugin'
       GROUP BY 1, 2
       ORDER BY 1
    |||)], unit='bytes'),
    g.withColumnLink(g.table('Slowest queries (samples)', [g.sql(|||
      SELECT at AS "time", host, tenant, op, tbl AS "table", duration_ns / 1e9 AS duration, rows, error,
             lpad(to_hex(fingerprint), 16, '0') AS fingerprint, statement
        FROM plugmon.slow_queries
       WHERE $__timeFilter(at) AND host IN ($host) AND plugin = '$plugin' AND tenant IN ($tenant)
       ORDER BY duration_ns DESC, at DESC
       LIMIT 100
    |||)], columns={ duration: 's' }, h=9), 'fingerprint',
      g.link('Slow queries of this statement', c.uid.slow, '&var-plugin=${plugin}&var-statement=${__value.raw}')),
  ],
)
