// app.js: the plugmon dashboard: live snapshots (SSE, polling fallback), views, alerts, export.
//
// Contract with the agent: agent/web/ui/README.md (routes, snapshot schema, body data-* hooks).
//
// Test hook, for browser tests driving the page over the DevTools protocol:
//   window.__plugmonTest.setHidden(bool|null)  overrides the Page Visibility API (null: the real
//                                              document.visibilityState again) and reacts at once.
//   window.__plugmonTest.advance(ms)           moves the page's clock forward by ms and runs the
//                                              once-a-second checks (staleness, hidden-tab release,
//                                              stream retry, polling) immediately.
//   window.__plugmonTest.state()               {seq, stream, staleness, points, hidden}.
// Example: setHidden(true); advance(31000) closes the stream; setHidden(false) reopens it.
'use strict';

(function () {
  const API = '../api/v1/';
  const F = window.PlugmonChart.fmt;
  const HIDDEN_RELEASE_MS = 30000;
  const POLL_MS = 2000;
  const STATEMENTS_MS = 5000;
  const SILENCES_MS = 15000;
  const ANNOUNCE_MS = 10000;
  const TOP_N = 8;

  // ---- Injectable clock and visibility ---------------------------------------------------

  const clock = { offset: 0, now() { return Date.now() + this.offset; } };
  const visibility = {
    forced: null,
    hidden() { return this.forced === null ? document.visibilityState === 'hidden' : this.forced; },
  };

  // ---- Small DOM and storage helpers ------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** An element with attributes/properties and children (strings become text nodes). */
  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'scope' || k === 'role')
        e.setAttribute(k, v);
      else e[k] = v;
    }
    e.append(...children.filter((c) => c !== null && c !== undefined));
    return e;
  }

  /** Set text only when it changed, so a live update never disturbs a selection. */
  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  function setClass(e, cls) {
    if (e.className !== cls) e.className = cls;
  }

  function stored(area, key, fallback) {
    try {
      const v = window[area].getItem('plugmon.' + key);
      return v === null ? fallback : JSON.parse(v);
    } catch (e) {
      return fallback;
    }
  }

  function store(area, key, value) {
    try {
      if (value === null) window[area].removeItem('plugmon.' + key);
      else window[area].setItem('plugmon.' + key, JSON.stringify(value));
    } catch (e) { /* storage disabled: settings last for this page only */ }
  }

  function showMessage(el, text) {
    el.hidden = !text;
    setText(el, text || '');
  }

  function notice(text) { showMessage($('notice'), text); }

  function ago(seconds) {
    if (seconds < 60) return Math.max(0, Math.floor(seconds)) + ' s';
    if (seconds < 3600) return Math.floor(seconds / 60) + ' min';
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + ' h';
    return (seconds / 86400).toFixed(1) + ' d';
  }

  function isoAgo(iso) {
    if (!iso) return '–';
    const t = Date.parse(iso);
    return isNaN(t) ? iso : ago((clock.now() - t) / 1000) + ' ago';
  }

  // ---- Page state --------------------------------------------------------------------------

  const state = {
    snap: null,          // the last snapshot rendered
    points: [],          // chart points, oldest first, at most one window
    lastDataAt: 0,       // local clock time of the last snapshot
    token: stored('sessionStorage', 'token', null),
    route: { plugin: null },
    statements: null,    // the last /ui/statements answer
    announcedAt: -Infinity,
    colors: new Map(),   // series key -> colour index, kept while the series stays shown
  };

  // ---- Stream, polling, staleness -----------------------------------------------------------

  const maxEvents = (() => {
    const v = new URLSearchParams(location.search).get('max_events');
    return v && /^[1-9][0-9]*$/.test(v) ? v : null;
  })();

  const stream = {
    es: null, state: 'connecting', failures: 0, retryAt: 0, pollAt: 0, polling: false,
    received: 0, hiddenSince: 0, released: false,
  };

  function setStreamState(s) {
    stream.state = s;
    document.body.dataset.streamState = s;
    updateStaleness();
  }

  function backoffMs(failures) {
    const base = Math.min(60000, 2000 * Math.pow(2, Math.max(0, failures - 1)));
    return base * (0.8 + 0.4 * Math.random());
  }

  /** True when the agent's streams are all taken: asking would be refused (a console error). */
  function streamsFull(snap) {
    return !!(snap && snap.agent && snap.status && snap.agent.max_streams &&
              snap.status.stream_clients >= snap.agent.max_streams);
  }

  /** Opens the stream, or polls while the latest snapshot says no stream is free. */
  function connect() {
    if (streamsFull(state.snap)) {
      closeStream();
      setStreamState('polling');
      if (clock.now() >= stream.pollAt) poll();
      return;
    }
    openStream();
  }

  function openStream() {
    closeStream();
    stream.received = 0;
    const es = new EventSource(API + 'ui/stream' + (maxEvents ? '?max_events=' + maxEvents : ''));
    stream.es = es;
    setStreamState('connecting');
    es.addEventListener('open', () => {
      if (stream.es !== es) return;
      stream.failures = 0;
      setStreamState('open');
    });
    es.addEventListener('snapshot', (ev) => {
      if (stream.es !== es) return;
      stream.received++;
      let snap;
      try { snap = JSON.parse(ev.data); } catch (e) { return; }
      onSnapshot(snap);
    });
    es.addEventListener('error', () => onStreamError(es));
  }

  function closeStream() {
    if (stream.es) stream.es.close();
    stream.es = null;
  }

  function onStreamError(es) {
    if (stream.es !== es) return;
    if (maxEvents && stream.received >= Number(maxEvents)) {
      // A one-shot test run: the server ended the stream on purpose; stay quiet.
      closeStream();
      setStreamState('closed');
    } else if (es.readyState === EventSource.CLOSED) {
      // Refused (e.g. 503 at the stream cap): poll, and try the stream again later.
      closeStream();
      stream.failures++;
      stream.retryAt = clock.now() + backoffMs(stream.failures);
      setStreamState('polling');
      poll();
    } else {
      setStreamState('connecting');  // the browser reconnects by itself (retry: 2000)
    }
  }

  async function poll() {
    if (stream.polling) return;
    stream.polling = true;
    stream.pollAt = clock.now() + POLL_MS;
    try {
      onSnapshot(await getJSON('ui/snapshot'));
    } catch (e) { /* staleness shows it */ }
    stream.polling = false;
  }

  /** The once-a-second checks; advance() in the test hook runs them at once. */
  function tick() {
    const now = clock.now();
    checkHidden(now);
    if (!stream.released) {
      if (stream.state === 'polling') {
        if (now >= stream.retryAt && !streamsFull(state.snap)) openStream();
        else if (now >= stream.pollAt) poll();
      } else if ((stream.state === 'open' || stream.state === 'connecting') && stale(now) >= 10 &&
                 now >= stream.retryAt) {
        // Nothing for 10 ticks on an "open" stream: the connection may be dead; recreate it.
        stream.failures++;
        stream.retryAt = now + backoffMs(stream.failures);
        openStream();
      }
    }
    updateStaleness();
    if (!visibility.hidden()) periodicFetches(now);
  }

  /** Ticks missed since the last snapshot (or since the page loaded). */
  function stale(now) {
    const interval = ((state.snap && state.snap.interval_seconds) || 1) * 1000;
    return (now - state.lastDataAt) / interval - 1;
  }

  function updateStaleness() {
    const now = clock.now();
    const missed = stale(now);
    const level = missed >= 10 ? 'red' : missed >= 3 ? 'amber' : 'live';
    document.body.dataset.staleness = level;
    const age = (now - state.lastDataAt) / 1000;
    let text = state.snap ? 'updated ' + ago(age) + ' ago' : 'waiting for data';
    if (stream.released) text = 'paused while the tab is hidden';
    else if (level === 'red') text = 'disconnected · ' + text;
    setText($('updated'), text);
    setClass($('updated'), 'stale-' + level);
    const labels = { open: 'live', polling: 'polling', connecting: 'connecting', closed: 'closed' };
    setText($('conn'), labels[stream.state]);
    setClass($('conn'), 'badge conn-' + stream.state + ' stale-' + level);
  }

  /** A tab hidden for more than 30 s releases its stream; it reconnects when shown again. */
  function checkHidden(now) {
    const hidden = visibility.hidden();
    window.PlugmonChart.setHidden(hidden);
    if (hidden) {
      if (!stream.hiddenSince) stream.hiddenSince = now;
      if (!stream.released && now - stream.hiddenSince > HIDDEN_RELEASE_MS) {
        stream.released = true;
        closeStream();
        setStreamState('closed');
      }
    } else {
      stream.hiddenSince = 0;
      if (stream.released) {
        stream.released = false;
        stream.failures = 0;
        connect();
        loadHistory();  // fill the charts' gap while hidden
        refreshStatements();
      }
    }
  }

  // ---- Snapshots and chart points ----------------------------------------------------------

  function onSnapshot(snap) {
    if (!snap || typeof snap.seq !== 'number') return;
    const prev = state.snap;
    if (prev && snap.seq <= prev.seq) {
      const restarted = snap.agent && prev.agent && snap.agent.started !== prev.agent.started;
      if (!restarted) return;  // an older or repeated snapshot (e.g. a poll racing the stream)
      state.points = [];
      loadHistory();
    }
    state.snap = snap;
    state.lastDataAt = clock.now();
    if (snap.point) addPoints([snap.point]);
    render();
    document.body.dataset.seq = String(snap.seq);
    document.body.dataset.ready = '1';
  }

  /** Merge points (any order) into the held ones: sorted by time, one per time, one window. */
  function addPoints(list) {
    const ok = list.filter((p) => p && typeof p.time === 'number');
    if (!ok.length) return;
    const pts = state.points;
    const last = pts.length ? pts[pts.length - 1].time : -Infinity;
    if (ok.length === 1 && ok[0].time > last) pts.push(ok[0]);
    else {
      const byTime = new Map(pts.map((p) => [p.time, p]));
      ok.forEach((p) => byTime.set(p.time, p));
      state.points = Array.from(byTime.values()).sort((a, b) => a.time - b.time);
    }
    const end = state.points[state.points.length - 1].time;
    const from = end - window.PlugmonChart.WINDOW_MS / 1000;
    let cut = 0;
    while (cut < state.points.length && state.points[cut].time < from) cut++;
    if (cut) state.points.splice(0, cut);
  }

  async function loadHistory() {
    try {
      const hist = await getJSON('ui/history');
      addPoints(hist.points || []);
      updateCharts();
    } catch (e) {
      notice('Chart history could not be loaded: ' + e.message);
    }
  }

  // ---- Rendering --------------------------------------------------------------------------

  function render() {
    const s = state.snap;
    document.body.classList.toggle('read-only', !!(s.agent && s.agent.read_only));
    renderHeader(s);
    renderStrip(s);
    renderPluginTable(s);
    renderAlerts(s);
    if (state.route.plugin !== null) renderPluginPage(s);
    updateCharts();
    announce(s);
  }

  function renderHeader(s) {
    const a = s.agent || {};
    setText($('agent-id'), [a.host, a.version && 'v' + a.version].filter(Boolean).join(' · '));
    document.title = (state.route.plugin !== null ? state.route.plugin + ' · ' : '') +
      'plugmon' + (a.host ? ' · ' + a.host : '');
  }

  function stripCell(id, text, level) {
    setText($(id), text);
    setClass($(id).parentNode, 'cell' + (level ? ' ' + level : ''));
  }

  function renderStrip(s) {
    const a = s.agent || {}, st = s.status || {};
    stripCell('st-ready', a.ready ? 'ready' : 'not ready', a.ready ? 'ok' : 'bad');
    const store = st.store || '–';
    stripCell('st-store', store, store === 'connected' ? 'ok' : store === 'disabled' ? '' : 'warn');
    const drops = st.ring_drops_per_second || 0;
    stripCell('st-drops', F.rate(drops) + '/s · ' + (st.ring_drops_total || 0) + ' total',
              drops > 0 ? 'warn' : '');
    const firing = st.alerts_firing || 0, pending = st.alerts_pending || 0;
    stripCell('st-alerts', firing + ' firing · ' + pending + ' pending',
              firing > 0 ? 'bad' : pending > 0 ? 'warn' : 'ok');
    stripCell('st-producers', String(st.producers ?? '–'), '');
    stripCell('st-series', String(st.series ?? '–'), '');
    stripCell('st-uptime', a.started ? ago(s.time - a.started) : '–', '');
  }

  /** The live region: a short summary, at most once per 10 s and only when it changed. */
  function announce(s) {
    const now = clock.now();
    if (now - state.announcedAt < ANNOUNCE_MS) return;
    const st = s.status || {};
    const text = (s.plugins || []).length + ' plugins reporting; ' + (st.alerts_firing || 0) +
      ' alerts firing; store ' + (st.store || 'unknown') + '.';
    if ($('live-status').textContent === text) return;
    state.announcedAt = now;
    $('live-status').textContent = text;
  }

  // ---- Sortable tables ----------------------------------------------------------------------

  /** A sortable table: columns [{key, label, num, value(row), cell(td, row)}]. */
  class SortTable {
    constructor(table, columns, opts) {
      this.table = table;
      this.columns = columns;
      this.keyOf = opts.keyOf;
      this.onRow = opts.onRow || (() => {});
      this.settingKey = opts.settingKey;
      this.sort = stored('localStorage', opts.settingKey, opts.defaultSort);
      if (!columns.some((c) => c.key === this.sort.key)) this.sort = opts.defaultSort;
      this.rows = new Map();
      this.items = [];
      this.buildHead();
    }

    buildHead() {
      const tr = h('tr');
      this.headers = this.columns.map((c) => {
        const th = h('th', { scope: 'col', class: (c.num ? 'num' : '') + (c.act ? ' act' : '') });
        if (c.sortable === false) th.textContent = c.label;
        else {
          const b = h('button', { type: 'button', class: 'sort' }, c.label, h('span', { class: 'arrow', 'aria-hidden': 'true' }));
          b.addEventListener('click', () => this.sortBy(c));
          th.append(b);
        }
        tr.append(th);
        return th;
      });
      this.table.tHead.replaceChildren(tr);
      this.markSorted();
    }

    markSorted() {
      this.columns.forEach((c, i) => {
        const th = this.headers[i];
        const on = c.key === this.sort.key;
        if (on) th.setAttribute('aria-sort', this.sort.dir > 0 ? 'ascending' : 'descending');
        else th.removeAttribute('aria-sort');
        const arrow = th.querySelector('.arrow');
        if (arrow) arrow.textContent = on ? (this.sort.dir > 0 ? ' ▲' : ' ▼') : '';
      });
    }

    sortBy(c) {
      // Numbers start descending (the biggest cost first), text ascending.
      if (this.sort.key === c.key) this.sort = { key: c.key, dir: -this.sort.dir };
      else this.sort = { key: c.key, dir: c.num ? -1 : 1 };
      store('localStorage', this.settingKey, this.sort);
      this.markSorted();
      this.update(this.items);
    }

    sorted(items) {
      const c = this.columns.find((x) => x.key === this.sort.key);
      const get = c.value || ((r) => r[c.key]);
      const dir = this.sort.dir;
      return items.slice().sort((a, b) => {
        const x = get(a), y = get(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;   // unknown values always last
        if (y === null || y === undefined) return -1;
        return (typeof x === 'string' ? x.localeCompare(y) : x - y) * dir;
      });
    }

    /** Show items, reusing each row's element (keyed), in sorted order. */
    update(items) {
      this.items = items;
      const body = this.table.tBodies[0];
      const next = new Map();
      let ref = body.firstChild;
      for (const item of this.sorted(items)) {
        const key = this.keyOf(item);
        let tr = this.rows.get(key);
        if (!tr) tr = this.makeRow(key);
        this.fillRow(tr, item);
        next.set(key, tr);
        if (tr === ref) ref = ref.nextSibling;
        else body.insertBefore(tr, ref);
      }
      this.rows.forEach((tr, key) => { if (!next.has(key)) tr.remove(); });
      this.rows = next;
    }

    makeRow(key) {
      const tr = h('tr');
      this.columns.forEach((c) => tr.append(h('td', { class: c.num ? 'num' : c.tdClass || '' })));
      this.onRow(tr, key);
      return tr;
    }

    fillRow(tr, item) {
      this.columns.forEach((c, i) => {
        const td = tr.cells[i];
        if (c.cell) c.cell(td, item);
        else setText(td, c.format ? c.format(item[c.key], item) : String(item[c.key] ?? '–'));
      });
    }

    /** The rows shown, in the order shown (for export). */
    shown() { return this.sorted(this.items); }
  }

  // ---- Plugins -------------------------------------------------------------------------------

  function pluginHref(name) { return '#/plugins/' + encodeURIComponent(name); }

  function linkCell(td, name) {
    let a = td.firstChild;
    if (!a) { a = h('a'); td.append(a); }
    const href = pluginHref(name);
    if (a.getAttribute('href') !== href) a.setAttribute('href', href);
    setText(a, name);
  }

  function heapCell(td, p) {
    if (!td.firstChild) td.append(h('span'), h('span', { class: 'flag', text: 'leak', title: 'The leak detector flags this heap as growing' }));
    setText(td.firstChild, F.bytes(p.heap_bytes));
    td.lastChild.hidden = !p.leak;
  }

  const PLUGIN_COLUMNS = [
    { key: 'plugin', label: 'Plugin', cell: (td, p) => linkCell(td, p.plugin), tdClass: 'name' },
    { key: 'calls_per_second', label: 'Calls/s', num: true, format: F.rate },
    { key: 'error_ratio', label: 'Error %', num: true, format: F.percent },
    { key: 'p50_seconds', label: 'p50', num: true, format: F.duration },
    { key: 'p95_seconds', label: 'p95', num: true, format: F.duration },
    { key: 'p99_seconds', label: 'p99', num: true, format: F.duration },
    { key: 'executions_per_second', label: 'Exec/s', num: true, format: F.rate },
    { key: 'cpu_seconds_per_second', label: 'CPU/s', num: true, format: (v) => (v === null || v === undefined ? '–' : F.duration(v)) },
    { key: 'heap_bytes', label: 'Heap', num: true, cell: heapCell },
    { key: 'pool_utilization', label: 'Pool', num: true, format: F.percent },
  ];

  let pluginTable;

  function renderPluginTable(s) {
    const plugins = s.plugins || [];
    pluginTable.update(plugins);
    $('plugins-empty').hidden = plugins.length > 0;
  }

  function pluginRowState(tr, p) {
    setClass(tr, (p.error_ratio > 0.05 ? 'row-bad' : '') + (p.leak ? ' row-warn' : ''));
  }

  // ---- Per-plugin page -------------------------------------------------------------------------

  const FIGURES = [
    ['Calls/s', (p) => F.rate(p.calls_per_second)],
    ['Errors/s', (p) => F.rate(p.errors_per_second)],
    ['Error ratio', (p) => F.percent(p.error_ratio)],
    ['p50', (p) => F.duration(p.p50_seconds)],
    ['p95', (p) => F.duration(p.p95_seconds)],
    ['p99', (p) => F.duration(p.p99_seconds)],
    ['Max', (p) => F.duration(p.max_seconds)],
    ['Executions/s', (p) => F.rate(p.executions_per_second)],
    ['CPU per second', (p) => F.duration(p.cpu_seconds_per_second)],
    ['Heap', (p) => F.bytes(p.heap_bytes) + (p.leak ? ' — growing (leak detector)' : '')],
    ['Pool utilisation', (p) => F.percent(p.pool_utilization)],
    ['Calls total', (p) => String(p.calls_total ?? '–')],
    ['Errors total', (p) => String(p.errors_total ?? '–')],
  ];

  function renderPluginPage(s) {
    const name = state.route.plugin;
    const p = (s.plugins || []).find((x) => x.plugin === name);
    setText($('plugin-state'), p ? (p.leak ? 'leak flagged' : 'reporting') : 'not reporting');
    setClass($('plugin-state'), 'badge ' + (p ? (p.leak ? 'warn' : 'ok') : 'muted'));
    const dl = $('plugin-figures');
    if (dl.children.length !== FIGURES.length)
      dl.replaceChildren(...FIGURES.map(([label]) => h('div', {}, h('dt', { text: label }), h('dd'))));
    FIGURES.forEach(([, get], i) => setText(dl.children[i].lastChild, p ? get(p) : '–'));
  }

  // ---- Routing --------------------------------------------------------------------------------

  function parseRoute() {
    const m = /^#\/plugins\/(.+)$/.exec(location.hash);
    if (m) {
      try { return { plugin: decodeURIComponent(m[1]) }; } catch (e) { /* malformed: overview */ }
    }
    return { plugin: null };
  }

  function onRoute() {
    state.route = parseRoute();
    const onPlugin = state.route.plugin !== null;
    $('view-overview').hidden = onPlugin;
    $('view-plugin').hidden = !onPlugin;
    $('silences-panel').hidden = onPlugin || !alertingOn();
    if (onPlugin) {
      setText($('plugin-title'), state.route.plugin);
      $('plugin-title').focus();
    }
    if (state.snap) render();
    else updateCharts();
    state.statements = null;
    refreshStatements();
  }

  // ---- Charts ---------------------------------------------------------------------------------

  const OVERVIEW_CHARTS = [
    { id: 'query-rate', title: 'Query rate', kind: 'rate', build: () => pluginSeries('calls_per_second') },
    { id: 'error-rate', title: 'Error rate (% of calls)', kind: 'percent', build: () => pluginSeries(errorRatio) },
    { id: 'p99', title: 'p99 latency', kind: 'duration', build: () => pluginSeries('p99_seconds') },
    { id: 'rss', title: 'Process RSS', kind: 'bytes', build: processSeries },
    { id: 'pool', title: 'Pool utilisation', kind: 'percent', build: () => pluginSeries('pool_utilization', true) },
  ];

  const PLUGIN_CHARTS = [
    { id: 'plugin-query-rate', title: 'Calls and errors', kind: 'rate', build: () => onePlugin([['calls', 'calls_per_second'], ['errors', 'errors_per_second']]) },
    { id: 'plugin-error-rate', title: 'Error rate (% of calls)', kind: 'percent', build: () => onePlugin([['error %', errorRatio]]) },
    { id: 'plugin-p99', title: 'p99 latency', kind: 'duration', build: () => onePlugin([['p99', 'p99_seconds']]) },
    { id: 'plugin-pool', title: 'Pool utilisation', kind: 'percent', build: () => onePlugin([['pool', 'pool_utilization']]) },
  ];

  function errorRatio(v) {
    if (!v || v.calls_per_second === undefined) return null;
    return v.calls_per_second > 0 ? (v.errors_per_second || 0) / v.calls_per_second : 0;
  }

  function field(get) {
    return typeof get === 'function' ? get : (v) => (v && v[get] !== undefined ? v[get] : null);
  }

  /** Colour indexes that stay with a series while it stays shown. */
  function colorsFor(group, keys) {
    const old = state.colors.get(group) || new Map();
    const next = new Map();
    keys.forEach((k) => { if (old.has(k)) next.set(k, old.get(k)); });
    const used = new Set(next.values());
    let free = 0;
    keys.forEach((k) => {
      if (next.has(k)) return;
      while (used.has(free)) free++;
      next.set(k, free);
      used.add(free);
    });
    state.colors.set(group, next);
    return next;
  }

  /** The top plugins by calls over the window held (at most TOP_N; the rest are dropped). */
  function topPlugins(onlyWith) {
    const calls = new Map();
    for (const p of state.points)
      for (const [name, v] of Object.entries(p.plugins || {})) {
        if (onlyWith && (v[onlyWith] === null || v[onlyWith] === undefined)) continue;
        calls.set(name, (calls.get(name) || 0) + (v.calls_per_second || 0));
      }
    return Array.from(calls.entries()).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, TOP_N).map((e) => e[0]).sort((a, b) => a.localeCompare(b));
  }

  function pluginSeries(get, onlyWithField) {
    const names = topPlugins(onlyWithField ? get : null);
    const colors = colorsFor('plugins', names);
    const value = field(get);
    return names.map((name) => ({
      key: name, label: name, color: colors.get(name),
      points: state.points.map((p) => [p.time * 1000, value((p.plugins || {})[name])]),
    }));
  }

  function processSeries() {
    const last = state.points.length ? state.points[state.points.length - 1].processes || {} : {};
    const names = Object.keys(last).sort((a, b) => last[b] - last[a]).slice(0, TOP_N).sort();
    const colors = colorsFor('processes', names);
    return names.map((name) => ({
      key: name, label: name, color: colors.get(name),
      points: state.points.map((p) => [p.time * 1000, (p.processes || {})[name] ?? null]),
    }));
  }

  function onePlugin(fields) {
    const name = state.route.plugin;
    return fields.map(([label, get], i) => {
      const value = field(get);
      return { key: label, label, color: i, points: state.points.map((p) => [p.time * 1000, value((p.plugins || {})[name])]) };
    });
  }

  function makeCharts(container, specs) {
    return specs.map((spec) => {
      const canvas = h('canvas', { 'data-chart': spec.id, role: 'img', 'aria-label': spec.title + ' chart' });
      const legend = h('ul', { class: 'legend' });
      const readout = h('span', { class: 'readout muted' });
      container.append(h('figure', { class: 'chart' },
        h('figcaption', {}, h('span', { class: 'ctitle', text: spec.title }), readout),
        canvas, legend));
      return { spec, chart: new window.PlugmonChart.TimeChart(canvas, { kind: spec.kind, legend, readout }) };
    });
  }

  let overviewCharts = [], pluginCharts = [];

  function updateCharts() {
    const list = state.route.plugin !== null ? pluginCharts : overviewCharts;
    const end = state.points.length ? state.points[state.points.length - 1].time * 1000 : clock.now();
    list.forEach(({ spec, chart }) => chart.setData(spec.build(), end, state.points.length));
  }

  // ---- API helpers and the token ---------------------------------------------------------------

  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = state.token;
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(API + path, {
      method, headers, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (res.ok) return data;
    const why = (data && typeof data.error === 'string') ? data.error : 'HTTP ' + res.status;
    if ((res.status === 401 || res.status === 403) && token) {
      forgetToken();
      throw new Error('The token was refused and has been forgotten (' + res.status + ': ' + why + ').');
    }
    throw new Error(why);
  }

  const getJSON = (path) => request('GET', path);

  function setToken(t) {
    state.token = t;
    store('sessionStorage', 'token', t);
    setText($('token-button'), t ? 'Forget token' : 'Set token');
  }

  function forgetToken() { setToken(null); }

  let tokenWaiter = null;

  /** Resolves with a token: the tab's one, or one asked for in the token dialog (null: cancelled). */
  function needToken() {
    if (state.token) return Promise.resolve(state.token);
    return new Promise((resolve) => {
      tokenWaiter = resolve;
      showMessage($('token-error'), '');
      $('token-input').value = '';
      $('token-dialog').showModal();
    });
  }

  function closeTokenDialog(value) {
    $('token-dialog').close();
    if (tokenWaiter) tokenWaiter(value);
    tokenWaiter = null;
  }

  function wireToken() {
    $('token-button').addEventListener('click', () => {
      if (state.token) { forgetToken(); notice(''); } else needToken();
    });
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('token-input').value.trim();
      if (!t) { showMessage($('token-error'), 'Enter a token.'); return; }
      setToken(t);
      closeTokenDialog(t);
    });
    $('token-cancel').addEventListener('click', () => closeTokenDialog(null));
    $('token-dialog').addEventListener('cancel', () => { if (tokenWaiter) tokenWaiter(null); tokenWaiter = null; });
    setToken(state.token);
  }

  /** Run an action that needs the token; its error is shown in errEl. */
  async function withToken(errEl, action) {
    showMessage(errEl, '');
    if (!(await needToken())) return false;
    try {
      await action();
      return true;
    } catch (e) {
      showMessage(errEl, e.message);
      return false;
    }
  }

  // ---- Alerts -----------------------------------------------------------------------------------

  const STATE_ORDER = { firing: 0, pending: 1, resolved: 2, inactive: 3 };
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };

  function since(a) {
    return a.state === 'resolved' ? a.resolved_at : a.state === 'firing' ? a.fired_at : a.active_at;
  }

  function labelChips(td, labels) {
    td.replaceChildren(...Object.entries(labels || {}).map(([k, v]) => h('span', { class: 'chip', text: k + '=' + v })));
  }

  function ackText(a) {
    if (!a.ack) return a.silenced ? 'silenced' : '–';
    const until = Date.parse(a.ack.expires_at);
    return 'acked by ' + a.ack.by + (a.ack.comment ? ': ' + a.ack.comment : '') +
      (isNaN(until) ? '' : ' (until ' + F.clockText(until, false) + ')');
  }

  function alertActions(td, a) {
    if (!td.firstChild) {
      const ack = h('button', { type: 'button', class: 'small act', 'data-action': 'ack', text: 'Ack' });
      const unack = h('button', { type: 'button', class: 'small act', 'data-action': 'unack', text: 'Un-ack' });
      const silence = h('button', { type: 'button', class: 'small act', 'data-action': 'silence', text: 'Silence…' });
      ack.addEventListener('click', () => openAck(td.closest('tr').alert));
      unack.addEventListener('click', () => unackAlert(td.closest('tr').alert));
      silence.addEventListener('click', () => prefillSilence(td.closest('tr').alert));
      td.append(ack, unack, silence);
    }
    td.children[0].hidden = !(a.state === 'firing' && !a.ack);
    td.children[1].hidden = !a.ack;
  }

  const ALERT_COLUMNS = [
    { key: 'state', label: 'State', value: (a) => STATE_ORDER[a.state] ?? 9, cell: (td, a) => badgeCell(td, a.state, 'st-' + a.state) },
    { key: 'severity', label: 'Severity', value: (a) => SEVERITY_ORDER[a.severity] ?? 9, cell: (td, a) => badgeCell(td, a.severity, 'sev-' + a.severity) },
    { key: 'rule', label: 'Rule', cell: ruleCell },
    { key: 'labels', label: 'Labels', sortable: false, cell: (td, a) => labelChips(td, a.labels) },
    { key: 'value', label: 'Value', num: true, format: (v) => (typeof v === 'number' ? F.num(v) : '–') },
    { key: 'since', label: 'Since', value: (a) => since(a) || '', format: (v, a) => isoAgo(since(a)), tdClass: 'nowrap' },
    { key: 'ack', label: 'Ack', value: (a) => (a.ack ? 1 : 0), format: (v, a) => ackText(a) },
    { key: 'actions', label: 'Actions', sortable: false, cell: alertActions, tdClass: 'act actions', act: true },
  ];

  function badgeCell(td, text, cls) {
    if (!td.firstChild) td.append(h('span'));
    setText(td.firstChild, text || '–');
    setClass(td.firstChild, 'badge ' + cls);
  }

  function ruleCell(td, a) {
    if (!td.firstChild) td.append(h('span', { class: 'rule' }), h('span', { class: 'summary muted' }));
    setText(td.firstChild, a.rule || '–');
    const ann = a.annotations || {};
    setText(td.lastChild, ann.summary || ann.description || '');
  }

  let alertTable;

  function renderAlerts(s) {
    const alerts = s.alerts || [];
    alertTable.update(alerts);
    alerts.forEach((a) => {
      const tr = alertTable.rows.get(a.fingerprint);
      tr.alert = a;
      setClass(tr, 'alert-' + a.state + (a.ack || a.silenced ? ' muted-row' : ''));
    });
    $('alerts-empty').hidden = alerts.length > 0;
    const firing = alerts.filter((a) => a.state === 'firing').length;
    setText($('alerts-count'), alerts.length ? firing + ' firing of ' + alerts.length : '');
  }

  let ackTarget = null;

  function openAck(a) {
    ackTarget = a;
    $('ack-what').textContent = a.rule + ' ' + Object.entries(a.labels || {}).map(([k, v]) => k + '=' + v).join(' ');
    $('ack-comment').value = '';
    showMessage($('ack-error'), '');
    $('ack-dialog').showModal();
  }

  function wireAck() {
    $('ack-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const comment = $('ack-comment').value.trim();
      if (!comment) { showMessage($('ack-error'), 'A comment is required.'); return; }
      const body = { comment, ttl: $('ack-ttl').value };
      const fp = ackTarget.fingerprint;
      const ok = await withToken($('ack-error'), () =>
        request('POST', 'alerts/' + encodeURIComponent(fp) + '/ack', body));
      if (ok) { $('ack-dialog').close(); notice(''); }
    });
    $('ack-cancel').addEventListener('click', () => $('ack-dialog').close());
  }

  async function unackAlert(a) {
    await withToken($('notice'), () => request('DELETE', 'alerts/' + encodeURIComponent(a.fingerprint) + '/ack'));
  }

  // ---- Silences ---------------------------------------------------------------------------------

  const OPS = { '=': [false, true], '!=': [false, false], '=~': [true, true], '!~': [true, false] };

  function opOf(m) {
    return Object.keys(OPS).find((k) => OPS[k][0] === !!m.isRegex && OPS[k][1] === (m.isEqual !== false));
  }

  const SILENCE_COLUMNS = [
    { key: 'state', label: 'State', value: (s) => (s.status || {}).state, cell: (td, s) => badgeCell(td, (s.status || {}).state, 'st-' + (s.status || {}).state) },
    { key: 'matchers', label: 'Matchers', sortable: false, cell: (td, s) => td.replaceChildren(...(s.matchers || []).map((m) => h('span', { class: 'chip', text: m.name + opOf(m) + m.value }))) },
    { key: 'startsAt', label: 'Starts', format: (v) => fmtIso(v) },
    { key: 'endsAt', label: 'Ends', format: (v) => fmtIso(v) },
    { key: 'createdBy', label: 'Created by' },
    { key: 'comment', label: 'Comment' },
    { key: 'actions', label: 'Actions', sortable: false, cell: silenceActions, tdClass: 'act actions', act: true },
  ];

  /** An RFC 3339 time as local "YYYY-MM-DD HH:MM". */
  function fmtIso(v) {
    const t = Date.parse(v);
    if (isNaN(t)) return '–';
    const d = new Date(t), p2 = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + ' ' + F.clockText(t, false);
  }

  function silenceActions(td, s) {
    if (!td.firstChild) {
      const b = h('button', { type: 'button', class: 'small act', text: 'Expire' });
      b.addEventListener('click', () => expireSilence(td.closest('tr').silence));
      td.append(b);
    }
    td.firstChild.hidden = (s.status || {}).state === 'expired';
    td.closest('tr').silence = s;
  }

  let silenceTable;

  async function refreshSilences() {
    try {
      const list = await getJSON('silences');
      const items = Array.isArray(list) ? list : [];
      silenceTable.update(items);
      $('silences-empty').hidden = items.length > 0;
      setText($('silences-status'), '');
      $('silence-form').classList.remove('unavailable');
    } catch (e) {
      silenceTable.update([]);
      $('silences-empty').hidden = true;
      setText($('silences-status'), e.message);
      $('silence-form').classList.add('unavailable');
    }
  }

  async function expireSilence(s) {
    const ok = await withToken($('notice'), () => request('DELETE', 'silences/' + encodeURIComponent(s.id)));
    if (ok) refreshSilences();
  }

  function addMatcherRow(name, op, value) {
    const sel = h('select', { 'aria-label': 'Operator' }, ...Object.keys(OPS).map((o) => h('option', { value: o, text: o })));
    sel.value = op || '=';
    const remove = h('button', { type: 'button', class: 'small', text: 'Remove', 'aria-label': 'Remove matcher' });
    const row = h('div', { class: 'matcher' },
      h('input', { type: 'text', value: name || '', placeholder: 'label', 'aria-label': 'Label name' }),
      sel,
      h('input', { type: 'text', value: value || '', placeholder: 'value', 'aria-label': 'Label value' }),
      remove);
    remove.addEventListener('click', () => { row.remove(); if (!$('matchers').children.length) addMatcherRow(); });
    $('matchers').append(row);
    return row;
  }

  /** Fill the new-silence form with an alert's labels (severity included) and focus it. */
  function prefillSilence(a) {
    $('matchers').replaceChildren();
    const labels = Object.assign({}, a.labels || {});
    Object.entries(labels).forEach(([k, v]) => addMatcherRow(k, '=', v));
    if (!$('matchers').children.length) addMatcherRow();
    $('silence-comment').value = '';
    if (state.route.plugin !== null) location.hash = '#/';
    $('silence-comment').focus();
  }

  function silenceBody() {
    const matchers = Array.from($('matchers').children).map((row) => {
      const [name, op, value] = row.querySelectorAll('input, select');
      const [isRegex, isEqual] = OPS[op.value];
      return { name: name.value.trim(), value: value.value, isRegex, isEqual };
    }).filter((m) => m.name);
    if (!matchers.length) throw new Error('Add at least one matcher with a label name.');
    const comment = $('silence-comment').value.trim();
    if (!comment) throw new Error('A comment is required.');
    const hours = { '15m': 0.25, '1h': 1, '4h': 4, '24h': 24, '168h': 168 }[$('silence-duration').value];
    const endsAt = new Date(Date.now() + hours * 3600 * 1000).toISOString();
    return { matchers, endsAt, comment };
  }

  function wireSilences() {
    addMatcherRow();
    $('add-matcher').addEventListener('click', () => addMatcherRow().querySelector('input').focus());
    $('silence-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      let body;
      try { body = silenceBody(); } catch (err) { showMessage($('silence-error'), err.message); return; }
      const ok = await withToken($('silence-error'), () => request('POST', 'silences', body));
      if (ok) {
        $('silence-comment').value = '';
        refreshSilences();
      }
    });
  }

  // ---- Statements -------------------------------------------------------------------------------

  function sqlCell(td, s) {
    if (!td.firstChild) {
      const more = h('button', { type: 'button', class: 'small more', text: 'more', 'aria-expanded': 'false' });
      more.addEventListener('click', () => {
        const open = td.classList.toggle('open');
        more.textContent = open ? 'less' : 'more';
        more.setAttribute('aria-expanded', String(open));
      });
      td.append(h('code', { class: 'sql' }), more);
    }
    setText(td.firstChild, s.statement || '');
    td.lastChild.hidden = (s.statement || '').length <= 140;
  }

  const STATEMENT_COLUMNS = [
    { key: 'plugin', label: 'Plugin', cell: (td, s) => linkCell(td, s.plugin), tdClass: 'name' },
    { key: 'statement', label: 'Statement', cell: sqlCell, tdClass: 'stmt' },
    { key: 'calls', label: 'Calls', num: true, format: (v) => String(v ?? '–') },
    { key: 'errors', label: 'Errors', num: true, format: (v) => String(v ?? '–') },
    { key: 'rows', label: 'Rows', num: true, format: (v) => String(v ?? '–') },
    { key: 'slow', label: 'Slow', num: true, format: (v) => String(v ?? '–') },
    { key: 'total_seconds', label: 'Total', num: true, format: F.duration },
    { key: 'mean_seconds', label: 'Mean', num: true, format: F.duration },
    { key: 'max_seconds', label: 'Max (since start)', num: true, format: F.duration },
  ];

  let stmtTable;
  let stmtBusy = false;
  let nextStatementsAt = 0, nextSilencesAt = 0;

  async function refreshStatements() {
    if (stmtBusy) return;
    stmtBusy = true;
    nextStatementsAt = clock.now() + STATEMENTS_MS;
    const win = $('stmt-window').value;
    const plugin = state.route.plugin;
    let path = 'ui/statements?window=' + encodeURIComponent(win);
    if (plugin !== null) path += '&plugin=' + encodeURIComponent(plugin);
    try {
      const res = await getJSON(path);
      if ($('stmt-window').value === win && state.route.plugin === plugin) {
        state.statements = res;
        const list = (res && res.statements) || [];
        stmtTable.update(list);
        $('stmt-empty').hidden = list.length > 0;
        setText($('stmt-status'), list.length + ' statements');
      }
    } catch (e) {
      setText($('stmt-status'), 'could not load: ' + e.message);
    }
    stmtBusy = false;
  }

  /**
   * Whether the agent has alerting: the snapshot has no flag for it (agent.alerting is honoured
   * if it ever appears), so "it has alerts" stands in. Without alerting /api/v1/silences answers
   * 404, which the browser would log as an error at every refresh.
   */
  function alertingOn() {
    const s = state.snap;
    if (!s) return false;
    if (s.agent && typeof s.agent.alerting === 'boolean') return s.agent.alerting;
    return (s.alerts || []).length > 0;
  }

  function periodicFetches(now) {
    if (now >= nextStatementsAt) refreshStatements();
    $('silences-panel').hidden = state.route.plugin !== null || !alertingOn();
    if (now >= nextSilencesAt && !$('silences-panel').hidden) {
      nextSilencesAt = now + SILENCES_MS;
      refreshSilences();
    }
  }

  // ---- Export -----------------------------------------------------------------------------------

  /** One CSV field (RFC 4180), with text that a spreadsheet would run as a formula defused. */
  function csvField(v) {
    if (v === null || v === undefined) return '';
    let s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function toCSV(rows, fields) {
    const lines = [fields.map(csvField).join(',')];
    rows.forEach((r) => lines.push(fields.map((f) => csvField(r[f])).join(',')));
    return lines.join('\r\n') + '\r\n';
  }

  function download(name, type, text) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = h('a', { href: url, download: name, class: 'sr-only' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function exportName(what, ext) {
    const host = (state.snap && state.snap.agent && state.snap.agent.host) || 'agent';
    const stamp = new Date(clock.now()).toISOString().replace(/[:.]/g, '-').slice(0, 19);
    return 'plugmon-' + what + '-' + host.replace(/[^A-Za-z0-9_.-]/g, '_') + '-' + stamp + '.' + ext;
  }

  const PLUGIN_FIELDS = ['plugin', 'calls_total', 'errors_total', 'calls_per_second', 'errors_per_second',
    'error_ratio', 'p50_seconds', 'p95_seconds', 'p99_seconds', 'max_seconds', 'executions_per_second',
    'cpu_seconds_per_second', 'heap_bytes', 'leak', 'pool_utilization'];
  const STATEMENT_FIELDS = ['plugin', 'fingerprint', 'statement', 'calls', 'errors', 'rows', 'slow',
    'total_seconds', 'mean_seconds', 'max_seconds'];

  function wireExports() {
    $('plugins-csv').addEventListener('click', () =>
      download(exportName('plugins', 'csv'), 'text/csv', toCSV(pluginTable.shown(), PLUGIN_FIELDS)));
    $('plugins-json').addEventListener('click', () =>
      download(exportName('plugins', 'json'), 'application/json', JSON.stringify(pluginTable.shown(), null, 2)));
    $('stmt-csv').addEventListener('click', () =>
      download(exportName('statements', 'csv'), 'text/csv', toCSV(stmtTable.shown(), STATEMENT_FIELDS)));
    $('stmt-json').addEventListener('click', () =>
      download(exportName('statements', 'json'), 'application/json', JSON.stringify(stmtTable.shown(), null, 2)));
  }

  // ---- Start ------------------------------------------------------------------------------------

  function wireStatements() {
    const sel = $('stmt-window');
    const saved = stored('localStorage', 'statementsWindow', '5m');
    sel.value = ['5m', '1h', 'start'].includes(saved) ? saved : '5m';
    sel.addEventListener('change', () => {
      store('localStorage', 'statementsWindow', sel.value);
      refreshStatements();
    });
  }

  function onVisibility() {
    tick();
    if (!visibility.hidden()) updateCharts();
  }

  function start() {
    pluginTable = new SortTable($('plugins-table'), PLUGIN_COLUMNS, {
      keyOf: (p) => p.plugin, settingKey: 'sort.plugins', defaultSort: { key: 'calls_per_second', dir: -1 },
      onRow: (tr, key) => tr.setAttribute('data-plugin', key),
    });
    const fillPlugin = pluginTable.fillRow.bind(pluginTable);
    pluginTable.fillRow = (tr, p) => { fillPlugin(tr, p); pluginRowState(tr, p); };
    alertTable = new SortTable($('alerts-table'), ALERT_COLUMNS, {
      keyOf: (a) => a.fingerprint, settingKey: 'sort.alerts', defaultSort: { key: 'state', dir: 1 },
      onRow: (tr, key) => tr.setAttribute('data-alert', key),
    });
    stmtTable = new SortTable($('stmt-table'), STATEMENT_COLUMNS, {
      keyOf: (s) => s.plugin + '\u0000' + s.fingerprint, settingKey: 'sort.statements',
      defaultSort: { key: 'total_seconds', dir: -1 },
    });
    silenceTable = new SortTable($('silences-table'), SILENCE_COLUMNS, {
      keyOf: (s) => s.id, settingKey: 'sort.silences', defaultSort: { key: 'endsAt', dir: -1 },
    });
    overviewCharts = makeCharts($('overview-charts'), OVERVIEW_CHARTS);
    pluginCharts = makeCharts($('plugin-charts'), PLUGIN_CHARTS);
    wireToken();
    wireAck();
    wireSilences();
    wireStatements();
    wireExports();
    state.lastDataAt = clock.now();
    window.addEventListener('hashchange', onRoute);
    document.addEventListener('visibilitychange', onVisibility);
    onRoute();
    // The first snapshot by a plain request: it also says whether a stream is free.
    getJSON('ui/snapshot').then(onSnapshot, () => {}).finally(connect);
    loadHistory();
    setInterval(tick, 1000);
  }

  window.__plugmonTest = {
    setHidden(hidden) { visibility.forced = hidden === null ? null : !!hidden; onVisibility(); },
    advance(ms) { clock.offset += ms; tick(); },
    state: () => ({
      seq: state.snap ? state.snap.seq : null, stream: stream.state,
      staleness: document.body.dataset.staleness, points: state.points.length, hidden: visibility.hidden(),
    }),
  };

  start();
})();
