// What the dashboards share: uids, variables, label selectors and SQL filters.
local g = import 'g.libsonnet';

{
  uid:: {
    fleet: 'plugmon-fleet',
    plugin: 'plugmon-plugin',
    slow: 'plugmon-slow-queries',
    health: 'plugmon-agent-health',
    alerts: 'plugmon-alert-history',
  },

  // Agents are Prometheus targets: `instance` is the agent on the Prometheus side, the `host`
  // column (the agent's `host` setting) is the agent on the PostgreSQL side.
  vars:: {
    job: g.var.prom('job', 'Job', 'label_values(plugmon_agent_windows_total, job)'),
    instance: g.var.prom('instance', 'Agent (instance)', 'label_values(plugmon_agent_windows_total{job=~"$job"}, instance)'),
    pluginOne: g.var.prom('plugin', 'Plugin', 'label_values(plugmon_queries_total{job=~"$job", instance=~"$instance"}, plugin)', multi=false, all=false),
    tenant: g.var.prom('tenant', 'Tenant', 'label_values(plugmon_queries_total{job=~"$job", instance=~"$instance", plugin="$plugin"}, tenant)'),
    // PostgreSQL side
    host: g.var.sql('host', 'Host (store)', 'SELECT DISTINCT host FROM plugmon.query_rollups_all WHERE $__timeFilter(bucket_start) ORDER BY 1'),
    slowHost: g.var.sql('host', 'Host', 'SELECT DISTINCT host FROM plugmon.slow_queries WHERE $__timeFilter(at) ORDER BY 1'),
    slowPlugin: g.var.sql('plugin', 'Plugin', 'SELECT DISTINCT plugin FROM plugmon.slow_queries WHERE $__timeFilter(at) AND host IN ($host) ORDER BY 1'),
    slowTenant: g.var.sql('tenant', 'Tenant', 'SELECT DISTINCT tenant FROM plugmon.slow_queries WHERE $__timeFilter(at) AND host IN ($host) AND plugin IN ($plugin) ORDER BY 1'),
    alertHost: g.var.sql('host', 'Host', 'SELECT DISTINCT host FROM plugmon.alert_events ORDER BY 1'),
    alertRule: g.var.sql('rule', 'Rule', 'SELECT DISTINCT rule FROM plugmon.alert_events WHERE host IN ($host) ORDER BY 1'),
  },

  // PromQL selectors
  agent:: 'job=~"$job", instance=~"$instance"',
  plug:: self.agent + ', plugin="$plugin", tenant=~"$tenant"',

  // rate() over the window Grafana picks for the panel
  rate(metric, sel):: 'rate(%s{%s}[$__rate_interval])' % [metric, sel],
  quantile(q, metric, sel, by=''):: 'histogram_quantile(%s, sum by (%sle) (%s))' % [q, if by == '' then '' else by + ', ', self.rate(metric + '_bucket', sel)],

  md:: {
    promVsSketch: 'Prometheus percentiles come from the agent\'s histogram buckets (`histogram_quantile`, as precise as the bucket bounds); ' +
                  'PostgreSQL percentiles merge the per-window DDSketches (`plugmon.sketch_quantile(plugmon.sketch_merge(sketch), q)`, about 1 % relative error) over the whole range, across hosts.',
  },
}
