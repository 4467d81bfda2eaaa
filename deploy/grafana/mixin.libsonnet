// plugmon's Grafana dashboards, mixin style: `grafanaDashboards` maps file names to dashboards.
// generate.sh writes each of them to dashboards/<name>; sources in src/, helpers in lib/.
{
  grafanaDashboards:: {
    'plugmon-fleet.json': import 'src/fleet.libsonnet',
    'plugmon-plugin.json': import 'src/plugin.libsonnet',
    'plugmon-slow-queries.json': import 'src/slow.libsonnet',
    'plugmon-agent-health.json': import 'src/health.libsonnet',
    'plugmon-alert-history.json': import 'src/alerts.libsonnet',
  },
}
