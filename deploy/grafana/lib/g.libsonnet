// Small builders for Grafana's classic dashboard JSON model (schemaVersion 39): datasources,
// template variables, targets, panels, automatic ids, refIds and grid layout, import metadata.
{
  schemaVersion:: 39,

  // Every panel and variable points at a datasource-type template variable, one per kind.
  ds:: {
    prom: { type: 'prometheus', uid: '${prometheus}' },
    pg: { type: 'grafana-postgresql-datasource', uid: '${postgres}' },
  },

  inputs:: {
    prom: {
      name: 'DS_PROMETHEUS',
      label: 'Prometheus',
      description: 'Prometheus server that scrapes the plugmon agents',
      type: 'datasource',
      pluginId: 'prometheus',
      pluginName: 'Prometheus',
    },
    pg: {
      name: 'DS_PLUGMON_POSTGRES',
      label: 'plugmon PostgreSQL',
      description: 'PostgreSQL database holding the plugmon schema (read-only role recommended)',
      type: 'datasource',
      pluginId: 'grafana-postgresql-datasource',
      pluginName: 'PostgreSQL',
    },
  },

  // ---- template variables ----------------------------------------------------------------
  var:: {
    // A datasource picker; its default is the datasource chosen at import.
    datasource(name, label, pluginId, input):: {
      name: name,
      label: label,
      type: 'datasource',
      query: pluginId,
      current: { selected: false, text: '${%s}' % input, value: '${%s}' % input },
      hide: 0,
      refresh: 1,
      regex: '',
      options: [],
    },
    prometheus:: self.datasource('prometheus', 'Prometheus', 'prometheus', 'DS_PROMETHEUS'),
    postgres:: self.datasource('postgres', 'PostgreSQL', 'grafana-postgresql-datasource', 'DS_PLUGMON_POSTGRES'),

    local query(name, label, ds, q, multi, all) = {
      name: name,
      label: label,
      type: 'query',
      datasource: ds,
      definition: q,
      query: q,
      refresh: 2,  // on time range change: new plugins and hosts appear
      sort: 1,
      multi: multi,
      includeAll: all,
      current: if all then { selected: true, text: ['All'], value: ['$__all'] } else {},
      options: [],
      regex: '',
      hide: 0,
    },
    // label_values(...) and friends, on the Prometheus variable.
    prom(name, label, q, multi=true, all=true):: query(name, label, $.ds.prom, q, multi, all),
    // A SQL query whose first column gives the values, on the PostgreSQL variable.
    sql(name, label, q, multi=true, all=true):: query(name, label, $.ds.pg, q, multi, all),
  },

  // ---- targets (refIds are assigned by the panel) ------------------------------------------
  prom(expr, legend='', instant=false, format='time_series'):: {
    datasource: $.ds.prom,
    expr: expr,
    legendFormat: legend,
    range: !instant,
    instant: instant,
    format: format,
  },
  sql(rawSql, format='table'):: {
    datasource: $.ds.pg,
    editorMode: 'code',
    rawQuery: true,
    rawSql: rawSql,
    format: format,
  },
  sqlSeries(rawSql):: self.sql(rawSql, 'time_series'),

  local refIds = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  local panelNames = {
    timeseries: 'Time series',
    stat: 'Stat',
    table: 'Table',
    bargauge: 'Bar gauge',
    gauge: 'Gauge',
    text: 'Text',
  },
  local withRefIds(targets) = [
    targets[i] { refId: refIds[i] }
    for i in std.range(0, std.length(targets) - 1)
  ],
  local dsOf(targets) =
    local kinds = std.set([t.datasource.type for t in targets]);
    assert std.length(kinds) == 1 : 'one datasource kind per panel, got %s' % [kinds];
    targets[0].datasource,

  // ---- panels ------------------------------------------------------------------------------
  // Every panel takes w and h (grid units); x, y and id are set by layout().
  local panel(type, title, targets, unit, w, h, desc) = {
    type: type,
    title: title,
    description: desc,
    datasource: dsOf(targets),
    targets: withRefIds(targets),
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
    options: {},
    gridPos: { w: w, h: h },
  },

  timeseries(title, targets, unit='short', w=12, h=8, desc='', stack=false, min=null):: panel('timeseries', title, targets, unit, w, h, desc) {
    fieldConfig+: {
      defaults+: {
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: if stack then 30 else 10,
          showPoints: 'never',
          spanNulls: false,
          stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
        },
      } + (if min != null then { min: min } else {}),
    },
    options: {
      legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['mean', 'max', 'lastNotNull'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  stat(title, targets, unit='short', w=4, h=4, desc='', thresholds=null, calc='lastNotNull'):: panel('stat', title, targets, unit, w, h, desc) {
    fieldConfig+: {
      defaults+: {
        thresholds: if thresholds == null then $.thresholds([['green', null]]) else thresholds,
        color: { mode: 'thresholds' },
      },
    },
    options: {
      reduceOptions: { calcs: [calc], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      justifyMode: 'auto',
      textMode: 'auto',
      orientation: 'auto',
    },
  },

  gauge(title, targets, unit='percentunit', w=4, h=4, desc='', max=1, thresholds=null):: panel('gauge', title, targets, unit, w, h, desc) {
    fieldConfig+: {
      defaults+: {
        min: 0,
        max: max,
        thresholds: if thresholds == null then $.thresholds([['green', null], ['orange', 0.7], ['red', 0.9]]) else thresholds,
      },
    },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      showThresholdLabels: false,
      showThresholdMarkers: true,
    },
  },

  bargauge(title, targets, unit='short', w=12, h=8, desc=''):: panel('bargauge', title, targets, unit, w, h, desc) {
    fieldConfig+: { defaults+: { min: 0, thresholds: $.thresholds([['blue', null]]), color: { mode: 'continuous-BlYlRd' } } },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: true },
      orientation: 'horizontal',
      displayMode: 'gradient',
      showUnfilled: true,
    },
  },

  // columns: { name: unit } sets a unit per result column (latency and byte columns).
  table(title, targets, w=24, h=8, desc='', columns={}, sortBy=null):: panel('table', title, targets, 'short', w, h, desc) {
    fieldConfig+: {
      overrides: [
        { matcher: { id: 'byName', options: c }, properties: [{ id: 'unit', value: columns[c] }] }
        for c in std.objectFields(columns)
      ],
    },
    options: {
      showHeader: true,
      cellHeight: 'sm',
      footer: { show: false, reducer: ['sum'], fields: '' },
    } + (if sortBy != null then { sortBy: [{ displayName: sortBy, desc: true }] } else {}),
  },

  text(title, markdown, w=24, h=3):: {
    type: 'text',
    title: title,
    gridPos: { w: w, h: h },
    options: { mode: 'markdown', content: markdown, code: { language: 'plaintext', showLineNumbers: false, showMiniMap: false } },
  },

  row(title):: { type: 'row', title: title, collapsed: false, panels: [], gridPos: { w: 24, h: 1 } },

  thresholds(steps):: {
    mode: 'absolute',
    steps: [{ color: s[0], value: s[1] } for s in steps],
  },

  // A data link from a table column (or series) to another dashboard, keeping time and variables.
  link(title, uid, params=''):: {
    title: title,
    url: '/d/%s?${__url_time_range}&${prometheus:queryparam}&${postgres:queryparam}%s' % [uid, params],
  },
  withColumnLink(p, column, link):: p {
    fieldConfig+: {
      overrides+: [{ matcher: { id: 'byName', options: column }, properties: [{ id: 'links', value: [link] }] }],
    },
  },
  withTransform(p, transformations):: p { transformations: transformations },

  // ---- layout --------------------------------------------------------------------------------
  // Places panels left to right, wrapping at 24 columns; a row starts a new line. The tallest panel
  // of a line decides where the next line starts. Ids are 1, 2, ... in reading order.
  layout(panels)::
    // Positions first, as plain numbers, so each is evaluated once (object fields are not cached).
    local n = std.length(panels);
    local pos = std.foldl(
      function(acc, i)
        local p = panels[i];
        local last = acc[std.length(acc) - 1];  // [x, y, lineH] after the previous panel
        local w = p.gridPos.w;
        local newLine = p.type == 'row' || last[0] + w > 24;
        local y = if newLine then last[1] + last[2] else last[1];
        local lineH = if newLine then p.gridPos.h else std.max(last[2], p.gridPos.h);
        acc + [[(if newLine then 0 else last[0]) + w, y, lineH, if newLine then 0 else last[0]]],
      std.range(0, n - 1),
      [[0, 0, 0, 0]]
    );
    [
      panels[i] { id: i + 1, gridPos: { h: panels[i].gridPos.h, w: panels[i].gridPos.w, x: pos[i + 1][3], y: pos[i + 1][1] } }
      for i in std.range(0, n - 1)
    ],

  // ---- dashboard -----------------------------------------------------------------------------
  // uses: which datasource kinds the dashboard needs ('prom', 'pg').
  dashboard(uid, title, description, panels, variables, uses, tags=[], time='now-1h', refresh='30s'):: {
    __inputs: [$.inputs[k] for k in uses],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.4.0' },
    ] + [
      { type: 'datasource', id: $.inputs[k].pluginId, name: $.inputs[k].pluginName, version: '1.0.0' }
      for k in uses
    ] + [
      { type: 'panel', id: t, name: panelNames[t], version: '' }
      for t in std.set([p.type for p in panels if p.type != 'row'])
    ],
    uid: uid,
    title: title,
    description: description,
    tags: ['plugmon'] + tags,
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    fiscalYearStartMonth: 0,
    liveNow: false,
    schemaVersion: $.schemaVersion,
    version: 1,
    time: { from: time, to: 'now' },
    timepicker: {},
    refresh: refresh,
    links: [
      {
        title: 'plugmon dashboards',
        type: 'dashboards',
        tags: ['plugmon'],
        asDropdown: true,
        includeVars: true,
        keepTime: true,
        icon: 'external link',
        targetBlank: false,
        tooltip: '',
        url: '',
      },
    ],
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      }],
    },
    templating: { list: variables },
    panels: $.layout(panels),
  },
}
