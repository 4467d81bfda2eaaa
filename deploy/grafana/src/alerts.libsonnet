// Alert history: what the agents' alert engines raised, from plugmon.alert_events and plugmon.alerts.
local g = import 'g.libsonnet';
local c = import 'common.libsonnet';

local events = |||
  FROM plugmon.alert_events
       WHERE $__timeFilter(at) AND host IN ($host) AND rule IN ($rule)
|||;

g.dashboard(
  c.uid.alerts,
  'plugmon / Alert history',
  'Alerts raised by the agents\' own alert engines: their current state (plugmon.alerts) and every change (plugmon.alert_events).',
  uses=['prom', 'pg'],
  tags=['alerts'],
  time='now-24h',
  variables=[g.var.prometheus, g.var.postgres, c.vars.job, c.vars.instance, c.vars.alertHost, c.vars.alertRule],
  panels=[
    g.row('Now'),
    g.stat('Firing', [g.sql("SELECT count(*) AS firing FROM plugmon.alerts WHERE state = 'firing' AND host IN ($host) AND rule IN ($rule)")], w=4,
           thresholds=g.thresholds([['green', null], ['red', 1]])),
    g.stat('Pending', [g.sql("SELECT count(*) AS pending FROM plugmon.alerts WHERE state = 'pending' AND host IN ($host) AND rule IN ($rule)")], w=4,
           thresholds=g.thresholds([['green', null], ['orange', 1]])),
    g.stat('Acknowledged', [g.sql("SELECT count(*) AS acknowledged FROM plugmon.alerts WHERE ack IS NOT NULL AND state IN ('pending', 'firing') AND host IN ($host) AND rule IN ($rule)")], w=4),
    g.stat('Changes in range', [g.sql('SELECT count(*) AS changes\n %s' % events)], w=4),
    g.timeseries('Alerts by state (agents, Prometheus)', [g.prom('sum by (state) (plugmon_alerts{%s})' % c.agent, '{{state}}')], w=8, h=4),
    g.table('Current state of each alert', [g.sql(|||
      SELECT updated_at AS "time", host, rule, labels ->> 'plugin' AS plugin, state, severity, value,
             fired_at, resolved_at, ack ->> 'by' AS acked_by, ack ->> 'comment' AS ack_comment,
             annotations ->> 'summary' AS summary, fingerprint
        FROM plugmon.alerts
       WHERE host IN ($host) AND rule IN ($rule)
       ORDER BY state = 'firing' DESC, state = 'pending' DESC, updated_at DESC
       LIMIT 200
    |||)], h=8, columns={ fired_at: 'dateTimeAsIso', resolved_at: 'dateTimeAsIso' }),

    g.row('History'),
    g.timeseries('Changes per interval by event', [g.sqlSeries(|||
      SELECT $__timeGroupAlias(at, $__interval), event AS metric, count(*) AS changes
        %s
       GROUP BY 1, 2
       ORDER BY 1
    ||| % events)], stack=true),
    g.bargauge('Episodes by rule (time range)', [g.sql(|||
      SELECT rule, count(DISTINCT (host, fingerprint, episode)) AS episodes
        %s AND state = 'firing'
       GROUP BY rule
       ORDER BY 2 DESC
    ||| % events)]),
    g.table('Episodes', [g.sql(|||
      SELECT min(at) AS "time", host, rule, max(labels ->> 'plugin') AS plugin, max(severity) AS severity,
             min(at) FILTER (WHERE state = 'firing') AS fired_at,
             max(at) FILTER (WHERE state = 'resolved') AS resolved_at,
             extract(epoch FROM coalesce(max(at) FILTER (WHERE state = 'resolved'), now())
                                - min(at) FILTER (WHERE state = 'firing')) AS firing_for,
             max(value) AS peak_value, count(*) AS changes, episode
        %s
       GROUP BY host, fingerprint, episode, rule
       ORDER BY min(at) DESC
       LIMIT 200
    ||| % events)], h=8, columns={ fired_at: 'dateTimeAsIso', resolved_at: 'dateTimeAsIso', firing_for: 's' }),
    g.table('Every change', [g.sql(|||
      SELECT at AS "time", host, rule, labels ->> 'plugin' AS plugin, event, state, severity, value, detail,
             ack ->> 'by' AS acked_by, seq, fingerprint, episode
        %s
       ORDER BY at DESC, seq DESC
       LIMIT 500
    ||| % events)], h=10),
  ],
)
