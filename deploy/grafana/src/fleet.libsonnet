// Fleet overview: every agent and plugin at a glance, from Prometheus, with the stored view beside it.
local g = import 'g.libsonnet';
local c = import 'common.libsonnet';
local a = c.agent;

local queries(sel) = c.rate('plugmon_queries_total', sel);
local pluginLink = g.link('Plugin detail', c.uid.plugin, '&${job:queryparam}&${instance:queryparam}&var-plugin=${__data.fields.plugin}');

g.dashboard(
  c.uid.fleet,
  'plugmon / Fleet overview',
  'Hosts, plugins, query and error rates, p99 latency, CPU and ring drops across all plugmon agents.',
  uses=['prom', 'pg'],
  tags=['overview'],
  variables=[g.var.prometheus, g.var.postgres, c.vars.job, c.vars.instance, c.vars.host],
  panels=[
    g.row('Fleet now'),
    g.stat('Agents', [g.prom('count(group by (instance) (plugmon_agent_windows_total{%s}))' % a)], w=3,
           desc='plugmon agents Prometheus scrapes (one per host).'),
    g.stat('Plugins', [g.prom('count(group by (plugin) (plugmon_queries_total{%s}))' % a)], w=3),
    g.stat('Queries / s', [g.prom('sum(%s)' % queries(a))], unit='reqps', w=3),
    g.stat('Error ratio', [g.prom('sum(%s) / sum(%s)' % [queries(a + ', status="error"'), queries(a)])], unit='percentunit', w=3,
           thresholds=g.thresholds([['green', null], ['orange', 0.01], ['red', 0.05]])),
    g.stat('Query p99', [g.prom(c.quantile(0.99, 'plugmon_query_duration_seconds', a))], unit='s', w=3),
    g.stat('Plugin CPU', [g.prom('sum(%s)' % c.rate('plugmon_plugin_cpu_seconds_total', a))], unit='percentunit', w=3,
           desc='CPU time inside plugin executions per second (100 % = one core).'),
    g.stat('Ring drops / s', [g.prom('sum(%s)' % c.rate('plugmon_ring_events_dropped_total', a))], unit='short', w=3,
           thresholds=g.thresholds([['green', null], ['red', 0.000001]])),
    g.stat('Alerts firing', [g.prom('sum(plugmon_alerts{%s, state="firing"})' % a)], w=3,
           thresholds=g.thresholds([['green', null], ['red', 1]])),

    g.row('Plugins'),
    g.withColumnLink(g.withTransform(
      g.table('Plugins (now)', [
        g.prom('sum by (plugin) (%s)' % queries(a), instant=true, format='table'),
        g.prom('sum by (plugin) (%s) / sum by (plugin) (%s)' % [queries(a + ', status="error"'), queries(a)], instant=true, format='table'),
        g.prom(c.quantile(0.99, 'plugmon_query_duration_seconds', a, 'plugin'), instant=true, format='table'),
        g.prom('sum by (plugin) (%s)' % c.rate('plugmon_plugin_cpu_seconds_total', a), instant=true, format='table'),
      ], h=7, columns={ 'Value #A': 'reqps', 'Value #B': 'percentunit', 'Value #C': 's', 'Value #D': 'percentunit' }),
      [
        { id: 'merge', options: {} },
        { id: 'organize', options: {
          excludeByName: { Time: true },
          renameByName: { 'Value #A': 'queries/s', 'Value #B': 'error ratio', 'Value #C': 'p99', 'Value #D': 'CPU' },
        } },
      ]
    ), 'plugin', pluginLink),
    g.timeseries('Queries / s by plugin', [g.prom('sum by (plugin) (%s)' % queries(a), '{{plugin}}')], unit='reqps', w=8),
    g.timeseries('Error ratio by plugin', [g.prom('sum by (plugin) (%s) / sum by (plugin) (%s)' % [queries(a + ', status="error"'), queries(a)], '{{plugin}}')], unit='percentunit', w=8, min=0),
    g.timeseries('CPU by plugin', [g.prom('sum by (plugin) (%s)' % c.rate('plugmon_plugin_cpu_seconds_total', a), '{{plugin}}')], unit='percentunit', w=8,
                 desc='Thread CPU time inside plugin executions per second (100 % = one core).'),
    g.timeseries('Query p99 by plugin (Prometheus histograms)', [g.prom(c.quantile(0.99, 'plugmon_query_duration_seconds', a, 'plugin'), '{{plugin}}')], unit='s', desc=c.md.promVsSketch),
    g.timeseries('Query p99 by plugin (PostgreSQL sketches)', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(bucket_start, $__interval), plugin AS metric,
             plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) / 1e9 AS p99
        FROM plugmon.query_rollups_all
       WHERE $__timeFilter(bucket_start) AND host IN ($host)
       GROUP BY 1, 2
       ORDER BY 1
    |||)], unit='s', desc=c.md.promVsSketch),

    g.row('Agents'),
    g.timeseries('Ring drops / s by reason', [g.prom('sum by (instance, reason) (%s)' % c.rate('plugmon_ring_events_dropped_total', a), '{{instance}} {{reason}}')], w=8,
                 desc='Events recorded by probes that never reached an aggregate: full (a lane was full), torn (writer died mid-record), invalid.'),
    g.timeseries('Events drained / s', [g.prom('sum by (instance) (%s)' % c.rate('plugmon_agent_events_drained_total', a), '{{instance}}')], w=8),
    g.timeseries('Fullest lane', [g.prom('max by (instance) (plugmon_ring_used_ratio{%s})' % a, '{{instance}}')], unit='percentunit', w=8, min=0),
    g.timeseries('Plugin processes: resident memory', [g.prom('sum by (instance, name) (plugmon_process_resident_memory_bytes{%s})' % a, '{{instance}} {{name}}')], unit='bytes', w=8),
    g.timeseries('Plugin processes: CPU', [g.prom('sum by (instance, name) (%s)' % c.rate('plugmon_process_cpu_seconds_total', a), '{{instance}} {{name}}')], unit='percentunit', w=8,
                 desc='User + system CPU of the processes hosting plugins (100 % = one core).'),
    g.timeseries('Producers by state', [g.prom('sum by (instance, state) (plugmon_producers{%s})' % a, '{{instance}} {{state}}')], w=8),
    g.table('Hosts in the store (time range)', [g.sql(|||
      SELECT host, count(DISTINCT plugin) AS plugins, sum(calls) AS calls, sum(errors) AS errors,
             sum(errors)::float8 / nullif(sum(calls), 0) AS error_ratio,
             plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) / 1e9 AS p99,
             max(bucket_start) AS last_window
        FROM plugmon.query_rollups_all
       WHERE $__timeFilter(bucket_start) AND host IN ($host)
       GROUP BY host
       ORDER BY host
    |||)], h=6, columns={ error_ratio: 'percentunit', p99: 's', last_window: 'dateTimeAsIso' }),
  ],
)
