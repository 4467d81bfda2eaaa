// Store and agent health: the agents' own plugmon_* metrics (writer, spool, window sinks, ingest,
// HTTP, alert engine and notifications).
local g = import 'g.libsonnet';
local c = import 'common.libsonnet';
local a = c.agent;
local r(m) = c.rate(m, a);
local by(labels, m) = 'sum by (%s) (%s)' % [labels, r(m)];

g.dashboard(
  c.uid.health,
  'plugmon / Store and agent health',
  'The plugmon agents\' self-metrics: PostgreSQL writer and spool, window sinks, ingest and series budget, HTTP API, alert engine and notifications.',
  uses=['prom'],
  tags=['health'],
  variables=[g.var.prometheus, c.vars.job, c.vars.instance],
  panels=[
    g.row('Store (PostgreSQL writer)'),
    g.stat('Connected', [g.prom('min(plugmon_store_connected{%s})' % a)], w=4, unit='bool_yes_no',
           thresholds=g.thresholds([['red', null], ['green', 1]])),
    g.stat('Schema version', [g.prom('min(plugmon_store_schema_version{%s})' % a)], w=4),
    g.stat('Circuit open', [g.prom('sum(plugmon_store_circuit_state{%s, state!="closed"})' % a)], w=4,
           desc='Agents whose breaker in front of PostgreSQL is open or half-open.',
           thresholds=g.thresholds([['green', null], ['red', 1]])),
    g.stat('Spooled', [g.prom('sum(plugmon_store_spool_bytes{%s})' % a)], unit='bytes', w=4,
           thresholds=g.thresholds([['green', null], ['orange', 1048576]])),
    g.stat('Batches dropped / s', [g.prom('sum(%s)' % r('plugmon_store_dropped_batches_total'))], w=4,
           thresholds=g.thresholds([['green', null], ['red', 0.000001]])),
    g.stat('Write failures / s', [g.prom('sum(%s)' % r('plugmon_store_write_failures_total'))], w=4,
           thresholds=g.thresholds([['green', null], ['orange', 0.000001]])),
    g.timeseries('Rows written / s by table', [g.prom(by('table', 'plugmon_store_rows_written_total'), '{{table}}')], w=8, stack=true),
    g.timeseries('Batches / s', [
      g.prom(by('result', 'plugmon_store_batches_total'), '{{result}}'),
      g.prom('sum(%s)' % r('plugmon_store_batches_submitted_total'), 'submitted'),
    ], w=8),
    g.timeseries('Batch write time', [
      g.prom(c.quantile(0.5, 'plugmon_store_write_duration_seconds', a), 'p50'),
      g.prom(c.quantile(0.99, 'plugmon_store_write_duration_seconds', a), 'p99'),
    ], unit='s', w=8),
    g.timeseries('Spool', [
      g.prom('sum by (instance) (plugmon_store_spool_bytes{%s})' % a, '{{instance}}'),
    ], unit='bytes', w=8, desc='Batches wait here while PostgreSQL is unreachable; beyond spool_max_bytes the oldest are dropped.'),
    g.timeseries('Dropped / s by reason', [
      g.prom(by('reason', 'plugmon_store_dropped_batches_total'), 'batches {{reason}}'),
      g.prom(by('reason', 'plugmon_store_dropped_rows_total'), 'rows {{reason}}'),
    ], w=8),
    g.timeseries('Circuit breaker', [g.prom('sum by (instance, state) (plugmon_store_circuit_state{%s})' % a, '{{instance}} {{state}}')], w=8),

    g.row('Window sinks'),
    g.timeseries('Windows / s by sink and result', [g.prom(by('sink, result', 'plugmon_window_sink_windows_total'), '{{sink}} {{result}}')], w=12),
    g.timeseries('Sink queue fill', [
      g.prom('max by (sink) (plugmon_window_sink_queue_windows{%s} / plugmon_window_sink_queue_capacity{%s})' % [a, a], '{{sink}}'),
    ], unit='percentunit', w=12, min=0),

    g.row('Ingest'),
    g.timeseries('Events / s', [
      g.prom('sum(%s)' % r('plugmon_agent_events_drained_total'), 'drained'),
      g.prom('sum(%s)' % r('plugmon_agent_events_folded_total'), 'folded into __overflow__'),
      g.prom(by('reason', 'plugmon_ring_events_dropped_total'), 'dropped {{reason}}'),
    ], w=8),
    g.timeseries('Ring', [
      g.prom('max(plugmon_ring_used_ratio{%s})' % a, 'fullest lane'),
    ], unit='percentunit', w=8, min=0),
    g.timeseries('Backlog', [g.prom('sum by (instance) (plugmon_ring_backlog_events{%s})' % a, '{{instance}}')], w=8,
                 desc='Events published by probes but not yet drained.'),
    g.timeseries('Producers', [
      g.prom('sum by (state) (plugmon_producers{%s})' % a, '{{state}}'),
      g.prom('sum(%s)' % r('plugmon_agent_producers_registered_total'), 'registrations / s'),
      g.prom(by('reason', 'plugmon_agent_registrations_refused_total'), 'refused / s {{reason}}'),
    ], w=8),
    g.timeseries('Series budget', [
      g.prom('sum by (instance) (plugmon_agent_series{%s})' % a, '{{instance}} series'),
      g.prom('max by (instance) (plugmon_agent_series_budget{%s, scope="total"})' % a, '{{instance}} budget'),
    ], w=8),
    g.timeseries('Windows, samples and slow queries / s', [
      g.prom('sum(%s)' % r('plugmon_agent_windows_total'), 'windows'),
      g.prom('sum(%s)' % r('plugmon_agent_resource_samples_total'), 'resource samples'),
      g.prom('sum(%s)' % r('plugmon_agent_slow_queries_total'), 'slow queries'),
      g.prom('sum(%s)' % r('plugmon_agent_series_folded_total'), 'series folded'),
      g.prom('sum(%s)' % r('plugmon_agent_series_expired_total'), 'series expired'),
    ], w=8),

    g.row('HTTP API'),
    g.timeseries('Requests / s by handler and code', [g.prom(by('handler, code', 'plugmon_http_requests_total'), '{{handler}} {{code}}')], unit='reqps', w=8),
    g.timeseries('Request time p99 by handler', [g.prom(c.quantile(0.99, 'plugmon_http_request_duration_seconds', a, 'handler'), '{{handler}}')], unit='s', w=8),
    g.timeseries('Refusals and errors / s', [
      g.prom(by('reason', 'plugmon_http_auth_failures_total'), 'auth {{reason}}'),
      g.prom('sum(%s)' % r('plugmon_http_rejected_requests_total'), 'rejected before routing'),
      g.prom('sum(%s)' % r('plugmon_http_handler_errors_total'), 'handler errors (500)'),
      g.prom('sum(%s)' % r('plugmon_http_connections_total'), 'connections accepted'),
    ], w=8),

    g.row('Alert engine and notifications'),
    g.timeseries('Alerts by state and severity', [g.prom('sum by (state, severity) (plugmon_alerts{%s})' % a, '{{state}} {{severity}}')], w=8),
    g.timeseries('Rule evaluations / s', [g.prom(by('rule', 'plugmon_alert_rule_evaluations_total'), '{{rule}}')], w=8),
    g.timeseries('Rule evaluation time', [
      g.prom(c.quantile(0.99, 'plugmon_alert_rule_evaluation_duration_seconds', a), 'p99'),
    ], unit='s', w=8),
    g.timeseries('Notifications / s', [
      g.prom(by('receiver, event', 'plugmon_notifications_total'), '{{receiver}} {{event}}'),
      g.prom(by('receiver', 'plugmon_notification_requests_total'), '{{receiver}} requests'),
      g.prom(by('receiver, reason', 'plugmon_notification_requests_failed_total'), '{{receiver}} failed {{reason}}'),
    ], w=8),
    g.timeseries('Notification queue and dead letters', [
      g.prom('sum by (receiver) (plugmon_notification_queue_length{%s})' % a, '{{receiver}} queued'),
      g.prom(by('receiver', 'plugmon_notifications_dead_lettered_total'), '{{receiver}} dead-lettered / s'),
      g.prom(by('receiver', 'plugmon_notifications_coalesced_total'), '{{receiver}} coalesced / s'),
      g.prom(by('receiver', 'plugmon_notifications_resolve_skipped_total'), '{{receiver}} resolves skipped / s'),
      g.prom(by('receiver', 'plugmon_alertmanager_alerts_invalid_total'), '{{receiver}} invalid at Alertmanager / s'),
      g.prom(by('receiver', 'plugmon_notification_worker_errors_total'), '{{receiver}} worker errors / s'),
    ], w=8),
    g.timeseries('Notification outbox', [
      g.prom('sum by (instance) (plugmon_notification_outbox_bytes{%s})' % a, '{{instance}}'),
    ], unit='bytes', w=8),
    g.table('Alert engine state (now)', [
      g.prom('min by (instance) (plugmon_alert_config_last_reload_successful{%s})' % a, instant=true, format='table'),
      g.prom('sum by (instance) (plugmon_alert_silences{%s, state="active"})' % a, instant=true, format='table'),
      g.prom('sum by (instance) (plugmon_alerts_flapping{%s})' % a, instant=true, format='table'),
      g.prom('sum by (instance) (plugmon_alert_state_restored_instances{%s})' % a, instant=true, format='table'),
      g.prom('sum by (instance) (%s)' % r('plugmon_alert_acks_total'), instant=true, format='table'),
      g.prom('sum by (instance) (%s)' % r('plugmon_alert_notifications_unqueued_total'), instant=true, format='table'),
      g.prom('sum by (instance) (%s)' % r('plugmon_notification_outbox_corrupt_records_total'), instant=true, format='table'),
      g.prom('sum by (instance) (%s)' % r('plugmon_notifications_unknown_receiver_total'), instant=true, format='table'),
    ], h=5) {
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: {
          excludeByName: { Time: true },
          renameByName: {
            'Value #A': 'rules reloaded ok', 'Value #B': 'active silences', 'Value #C': 'flapping',
            'Value #D': 'restored at start', 'Value #E': 'acks / s', 'Value #F': 'unqueued / s',
            'Value #G': 'corrupt outbox records / s', 'Value #H': 'unknown receiver / s',
          },
        } },
      ],
    },
  ],
)
