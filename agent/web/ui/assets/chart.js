// chart.js: the dashboard's own canvas renderer for line series over a fixed rolling time window,
// plus the value formatters the page shares with it. Exposes window.PlugmonChart.
'use strict';

(function () {
  const WINDOW_MS = 10 * 60 * 1000;
  const MIN_SPAN_MS = 60 * 1000;  // the shortest x axis, for a young agent
  const PAD = { top: 8, right: 10, bottom: 20 };
  const TIME_STEPS_S = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const COLORS = 8;  // --c0 .. --c7 in style.css, light and dark variants

  // ---- Formatting -------------------------------------------------------------------------

  /** A number with about three significant digits, without trailing noise. */
  function num(v) {
    if (v === 0) return '0';
    const a = Math.abs(v);
    const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
    return v.toFixed(digits);
  }

  /** Seconds as µs below 1 ms, ms below 1 s, else s: a fast query never reads "0 ms". */
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    if (s < 1e-3) return num(s * 1e6) + ' µs';
    if (s < 1) return num(s * 1e3) + ' ms';
    return num(s) + ' s';
  }

  function rate(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (v >= 1e6) return num(v / 1e6) + 'M';
    if (v >= 1e4) return num(v / 1e3) + 'k';
    return num(v);
  }

  /** A ratio (0..1) as a percentage. */
  function percent(r) {
    if (r === null || r === undefined || !isFinite(r)) return '–';
    return num(r * 100) + ' %';
  }

  function bytes(b) {
    if (b === null || b === undefined || !isFinite(b)) return '–';
    const u = byteUnit(b);
    return (u.div === 1 ? String(Math.round(b)) : num(b / u.div)) + ' ' + u.suffix;
  }

  function byteUnit(max) {
    if (max >= 1 << 30) return { div: 1 << 30, suffix: 'GiB' };
    if (max >= 1 << 20) return { div: 1 << 20, suffix: 'MiB' };
    if (max >= 1 << 10) return { div: 1 << 10, suffix: 'KiB' };
    return { div: 1, suffix: 'B' };
  }

  /** The axis unit of a chart kind, chosen from the largest value shown. */
  function axisUnit(kind, max) {
    switch (kind) {
      case 'percent': return { div: 0.01, suffix: '%' };
      case 'bytes': return byteUnit(max);
      case 'duration':
        if (max < 1e-3) return { div: 1e-6, suffix: 'µs' };
        if (max < 1) return { div: 1e-3, suffix: 'ms' };
        return { div: 1, suffix: 's' };
      default:
        if (max >= 1e6) return { div: 1e6, suffix: 'M ops/s' };
        if (max >= 1e4) return { div: 1e3, suffix: 'k ops/s' };
        return { div: 1, suffix: 'ops/s' };
    }
  }

  const formatters = { rate: (v) => rate(v) + (v === null ? '' : '/s'), percent, duration, bytes };

  function formatValue(kind, v) {
    if (v === null || v === undefined) return '–';
    return (formatters[kind] || num)(v);
  }

  function pad2(n) { return n < 10 ? '0' + n : String(n); }

  function clockText(ms, seconds) {
    const d = new Date(ms);
    const hm = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    return seconds ? hm + ':' + pad2(d.getSeconds()) : hm;
  }

  // ---- Scales -----------------------------------------------------------------------------

  /** A step of 1, 2, 2.5 or 5 times a power of ten giving about `count` intervals. */
  function niceStep(range, count) {
    const raw = range / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
  }

  function decimalsFor(step) {
    for (let d = 0; d < 4; d++)
      if (Math.abs(Math.round(step * Math.pow(10, d)) - step * Math.pow(10, d)) < 1e-6) return d;
    return 4;
  }

  /** Y ticks from 0 to a round top that holds `max` (in base units). */
  function yScale(kind, max) {
    const unit = axisUnit(kind, max);
    const scaled = max / unit.div;
    const step = scaled > 0 ? niceStep(scaled, 4) : 1;
    const top = scaled > 0 ? Math.ceil(scaled / step - 1e-9) * step : 4 * step;
    const d = decimalsFor(step);
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step)
      ticks.push({ value: v * unit.div, label: v.toFixed(d) + ' ' + unit.suffix });
    return { top: top * unit.div, ticks };
  }

  // ---- Shared state: visibility and colour scheme ------------------------------------------

  const charts = new Set();
  let hidden = false;

  /** While hidden, charts only remember they are stale; they draw when visible again. */
  function setHidden(h) {
    hidden = !!h;
    if (!hidden) charts.forEach((c) => c.invalidate());
  }

  if (window.matchMedia)
    window.matchMedia('(prefers-color-scheme: dark)')
      .addEventListener('change', () => charts.forEach((c) => c.invalidate()));

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // ---- The chart ----------------------------------------------------------------------------

  class TimeChart {
    /**
     * canvas: the <canvas data-chart>; opts.kind: rate|percent|duration|bytes;
     * opts.legend: a <ul> filled with DOM text; opts.readout: an element for the hover time.
     */
    constructor(canvas, opts) {
      this.canvas = canvas;
      this.kind = opts.kind;
      this.legend = opts.legend;
      this.readout = opts.readout;
      this.windowMs = opts.windowMs || WINDOW_MS;
      this.span = this.windowMs;  // the x axis's span: see setData
      this.gapMs = opts.gapMs || 5000;
      this.series = [];
      this.end = 0;
      this.hoverT = null;
      this.legendKeys = '';
      this.frame = 0;
      this.dirty = false;
      this.ctx = canvas.getContext('2d');
      canvas.dataset.points = '0';
      new ResizeObserver(() => this.invalidate()).observe(canvas);
      canvas.addEventListener('pointermove', (e) => this.hover(e));
      canvas.addEventListener('pointerleave', () => this.hover(null));
      charts.add(this);
    }

    /**
     * series: [{key, label, color (0..7), points: [[ms, value|null], ...]}] sorted by time;
     * endMs: the right edge of the window; heldPoints: the figure for data-points.
     */
    setData(series, endMs, heldPoints) {
      this.series = series;
      this.end = endMs;
      // The x axis spans the data held, from one minute up to the whole window, so a young
      // agent's lines fill the chart instead of sitting at its right edge.
      let oldest = endMs;
      for (const s of series) if (s.points.length) oldest = Math.min(oldest, s.points[0][0]);
      this.span = Math.min(this.windowMs, Math.max(MIN_SPAN_MS, endMs - oldest));
      this.canvas.dataset.points = String(heldPoints);
      this.buildLegend();
      this.showValues(this.hoverT);
      this.invalidate();
    }

    /** Redraw at the next animation frame, at most once per frame. */
    invalidate() {
      this.dirty = true;
      if (hidden || this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        if (!hidden && this.dirty) this.draw();
      });
    }

    buildLegend() {
      const keys = this.series.map((s) => s.key + '\u0000' + s.color).join('\u0001');
      if (keys === this.legendKeys) return;
      this.legendKeys = keys;
      this.legend.replaceChildren(...this.series.map((s) => {
        const li = document.createElement('li');
        const sw = document.createElement('span');
        sw.className = 'sw c' + s.color;
        const name = document.createElement('span');
        name.className = 'lname';
        name.textContent = shorten(s.label, 30);
        name.title = s.label;
        const val = document.createElement('span');
        val.className = 'lval';
        li.append(sw, name, val);
        return li;
      }));
    }

    /** Legend values at time t (ms), or the latest values when t is null. */
    showValues(t) {
      const items = this.legend.children;
      this.series.forEach((s, i) => {
        const p = t === null ? lastValue(s.points) : nearest(s.points, t);
        const text = formatValue(this.kind, p ? p[1] : null);
        const el = items[i] && items[i].lastChild;
        if (el && el.textContent !== text) el.textContent = text;
      });
      if (this.readout) this.readout.textContent = t === null ? '' : clockText(t, true);
    }

    hover(e) {
      if (e === null) this.hoverT = null;
      else {
        const r = this.canvas.getBoundingClientRect();
        const x = e.clientX - r.left;
        const plot = this.layout(r.width, r.height);
        if (x < plot.left || x > plot.right) this.hoverT = null;
        else this.hoverT = this.end - this.span + ((x - plot.left) / (plot.right - plot.left)) * this.span;
      }
      this.showValues(this.hoverT);
      this.invalidate();
    }

    /** Size the backing store for the element size and devicePixelRatio; false when not shown. */
    fit() {
      const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
      if (w === 0 || h === 0) return false;
      const dpr = window.devicePixelRatio || 1;
      const bw = Math.round(w * dpr), bh = Math.round(h * dpr);
      if (this.canvas.width !== bw || this.canvas.height !== bh) {
        this.canvas.width = bw;
        this.canvas.height = bh;
      }
      this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      return true;
    }

    layout(w, h) {
      return { left: this.leftPad || 48, right: w - PAD.right, top: PAD.top, bottom: h - PAD.bottom };
    }

    draw() {
      this.dirty = false;
      if (!this.fit()) return;
      const ctx = this.ctx, w = this.canvas.clientWidth, h = this.canvas.clientHeight;
      ctx.clearRect(0, 0, w, h);
      ctx.font = '11px ' + (cssVar('--font-num') || 'sans-serif');
      const scale = yScale(this.kind, maxValue(this.series, this.end - this.span));
      this.leftPad = 8 + Math.max(...scale.ticks.map((t) => ctx.measureText(t.label).width));
      const plot = this.layout(w, h);
      const x = (t) => plot.left + ((t - (this.end - this.span)) / this.span) * (plot.right - plot.left);
      const y = (v) => plot.bottom - (v / scale.top) * (plot.bottom - plot.top);
      this.drawYAxis(plot, scale, y);
      this.drawXAxis(plot, x);
      if (!this.series.some((s) => s.points.length)) this.drawEmpty(plot);
      this.series.forEach((s) => this.drawLine(s, plot, x, y));
      if (this.hoverT !== null) this.drawHover(plot, x, y);
    }

    drawYAxis(plot, scale, y) {
      const ctx = this.ctx;
      ctx.strokeStyle = cssVar('--chart-grid');
      ctx.fillStyle = cssVar('--chart-text');
      ctx.lineWidth = 1;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      scale.ticks.forEach((t) => {
        const yy = Math.round(y(t.value)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(plot.left, yy);
        ctx.lineTo(plot.right, yy);
        ctx.stroke();
        ctx.fillText(t.label, plot.left - 5, yy);
      });
    }

    drawXAxis(plot, x) {
      const ctx = this.ctx;
      const pxPerS = (plot.right - plot.left) / (this.span / 1000);
      const step = TIME_STEPS_S.find((s) => s * pxPerS >= 60) || 3600;
      const first = Math.ceil((this.end - this.span) / (step * 1000)) * step * 1000;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      for (let t = first; t <= this.end; t += step * 1000) {
        const xx = Math.round(x(t)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(xx, plot.bottom);
        ctx.lineTo(xx, plot.bottom + 4);
        ctx.stroke();
        ctx.fillText(clockText(t, step < 60), xx, plot.bottom + 6);
      }
    }

    drawEmpty(plot) {
      const ctx = this.ctx;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('no data yet', (plot.left + plot.right) / 2, (plot.top + plot.bottom) / 2);
    }

    /** One series; a null value or a gap longer than gapMs breaks the line. */
    drawLine(s, plot, x, y) {
      const ctx = this.ctx;
      const start = this.end - this.span;
      ctx.save();
      ctx.beginPath();
      ctx.rect(plot.left, plot.top - 1, plot.right - plot.left, plot.bottom - plot.top + 2);
      ctx.clip();
      ctx.strokeStyle = cssVar('--c' + (s.color % COLORS));
      ctx.lineWidth = 1.5;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let prevT = null;
      for (const [t, v] of s.points) {
        if (t < start - this.gapMs) continue;
        if (v === null || v === undefined) { prevT = null; continue; }
        if (prevT === null || t - prevT > this.gapMs) ctx.moveTo(x(t), y(v));
        else ctx.lineTo(x(t), y(v));
        prevT = t;
      }
      ctx.stroke();
      ctx.restore();
    }

    drawHover(plot, x, y) {
      const ctx = this.ctx;
      const xx = Math.round(x(this.hoverT)) + 0.5;
      ctx.strokeStyle = cssVar('--chart-text');
      ctx.beginPath();
      ctx.moveTo(xx, plot.top);
      ctx.lineTo(xx, plot.bottom);
      ctx.stroke();
      this.series.forEach((s) => {
        const p = nearest(s.points, this.hoverT);
        if (!p || p[1] === null) return;
        ctx.fillStyle = cssVar('--c' + (s.color % COLORS));
        ctx.beginPath();
        ctx.arc(x(p[0]), y(p[1]), 3, 0, 2 * Math.PI);
        ctx.fill();
      });
    }
  }

  /** Long names lose their middle, not their end: plugins often share a prefix. */
  function shorten(text, max) {
    if (text.length <= max) return text;
    const head = Math.ceil((max - 1) / 2), tail = Math.floor((max - 1) / 2);
    return text.slice(0, head) + '…' + text.slice(text.length - tail);
  }

  function maxValue(series, from) {
    let max = 0;
    for (const s of series)
      for (const [t, v] of s.points) if (t >= from && v !== null && v > max) max = v;
    return max;
  }

  function lastValue(points) {
    for (let i = points.length - 1; i >= 0; i--) if (points[i][1] !== null) return points[i];
    return null;
  }

  /** The point closest in time to t (binary search; points are sorted by time). */
  function nearest(points, t) {
    if (!points.length) return null;
    let lo = 0, hi = points.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (points[mid][0] < t) lo = mid; else hi = mid;
    }
    return Math.abs(points[lo][0] - t) <= Math.abs(points[hi][0] - t) ? points[lo] : points[hi];
  }

  window.PlugmonChart = {
    TimeChart, setHidden, formatValue, niceStep, yScale,
    fmt: { num, duration, rate, percent, bytes, clockText },
    WINDOW_MS, COLORS,
  };
})();
