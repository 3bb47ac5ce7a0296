/*
 * payd's dashboard: draws the history of /dashboard/data as SVG line charts and the
 * alarm states of /alarms, every 10 s. No dependency, no external resource.
 *
 * For tests and scripts the page exposes what it drew:
 *   <svg id="chart-NAME" data-points="N" data-max="X">  N: points with data drawn
 *       (the longest line), X: the highest value drawn (raw units);
 *   #alarms data-state: loading | ok | alarm | unavailable (404) | error;
 *   #errors data-count: script errors and failed requests, listed in #errors.
 */
'use strict';

const REFRESH_MS = 10000;
const SVG_NS = 'http://www.w3.org/2000/svg';
const W = 400, H = 150, PAD_L = 58, PAD_R = 6, PAD_T = 8, PAD_B = 20;

const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);
const pct = (v) => (v == null ? null : v * 100);

/* the charts: each line takes a series of /dashboard/data (key) or computes from several (calc) */
const CHARTS = [
  { id: 'cpu', title: 'Service CPU', unit: '%', lines: [{ label: 'CPU', calc: (s, i) => pct(s.cpu_cores[i]) }],
    source: 'rate(process_cpu_seconds_total) × 100: 100 % is one core busy' },
  { id: 'memory', title: 'Service memory', unit: 'B', lines: [{ label: 'resident', key: 'memory_bytes' }],
    source: 'process_resident_memory_bytes' },
  { id: 'connections', title: 'Active connections', unit: '', lines: [{ label: 'API listener', key: 'connections' }],
    source: 'payd_http_connections{listener="api"}' },
  { id: 'response_time', title: 'Target response time (API mean)', unit: 's',
    lines: [{ label: 'mean', calc: (s, i) => ratio(s.api_seconds_per_s[i], s.api_requests_per_s[i]) }],
    source: 'payd_http_request_duration_seconds sum / count, /v1 routes' },
  { id: 'db_cpu', title: 'Database: commit latency p99', unit: 's',
    lines: [{ label: 'commit p99', key: 'db_commit_p99_s' }],
    source: 'payd_store_commit_seconds p99 (payd does not see the database server\u2019s CPU; this is what it measures of its database)' },
  { id: 'db_connections', title: 'Database connections', unit: '', lines: [{ label: 'open', key: 'db_connections' }],
    source: 'payd_db_connections (writer + reader)' },
  { id: 'api_requests', title: 'API requests', unit: '/s', lines: [{ label: 'requests', key: 'api_requests_per_s' }],
    source: 'rate(payd_http_requests_total), /v1 routes' },
  { id: 'api_latency', title: 'API latency', unit: 's',
    lines: [{ label: 'p50', key: 'api_latency_p50_s' }, { label: 'p99', key: 'api_latency_p99_s' }],
    source: 'payd_http_request_duration_seconds p50 / p99 per interval, /v1 routes' },
  { id: 'stream', title: 'Stream incoming records', unit: '/s', lines: [{ label: 'published', key: 'stream_published_per_s' }],
    source: 'rate(payd_stream_published_total)' },
  { id: 'payments', title: 'Payments by outcome', unit: '/s',
    lines: ['succeeded', 'requires_capture', 'failed', 'unknown', 'error'].map((o) => ({ label: o, key: 'payments_' + o + '_per_s' })),
    source: 'rate(payd_payments_total) by outcome' },
  { id: 'waf_blocks', title: 'WAF blocks', unit: '/s', lines: [{ label: 'blocked', key: 'waf_blocks_per_s' }],
    source: 'rate(payd_waf_decisions_total{action="block"})' },
];

let range = new URLSearchParams(location.search).get('range') === '24h' ? '24h' : '1h';
let errorCount = 0;

function reportError(msg) {
  const pre = document.getElementById('errors');
  errorCount++;
  pre.dataset.count = String(errorCount);
  pre.textContent += new Date().toISOString() + ' ' + msg + '\n';
}
window.addEventListener('error', (e) => reportError('script error: ' + e.message));
window.addEventListener('unhandledrejection', (e) => reportError('unhandled: ' + e.reason));

function el(tag, attrs, text) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

/* 1234567 B -> "1.18 MiB", 0.0042 s -> "4.2 ms" */
function fmt(v, unit) {
  if (v == null || !isFinite(v)) return '–';
  if (unit === 'B') {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return num(v) + ' ' + u[i];
  }
  if (unit === 's') {
    if (v === 0) return '0 s';
    if (Math.abs(v) < 1e-3) return num(v * 1e6) + ' µs';
    if (Math.abs(v) < 1) return num(v * 1e3) + ' ms';
    return num(v) + ' s';
  }
  return num(v) + (unit ? ' ' + unit : '');
}
function num(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  return Number(v.toPrecision(3)).toString();
}
function clock(t, withDate) {
  const d = new Date(t * 1000);
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: withDate ? undefined : '2-digit' });
  return withDate ? d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + hm : hm;
}

/* a nice upper bound for the y axis */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function buildCharts() {
  const main = document.getElementById('charts');
  for (const c of CHARTS) {
    const fig = el('figure', { class: 'chart', id: 'fig-' + c.id });
    fig.appendChild(el('h3', {}, c.title));
    const svg = el('svg:svg', { id: 'chart-' + c.id, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': c.title,
                                'data-points': '0', 'data-max': '0', preserveAspectRatio: 'xMidYMid meet' });
    fig.appendChild(svg);
    const legend = el('p', { class: 'legend' });
    c.lines.forEach((l, k) => {
      const item = el('span', { class: 'item' });
      item.appendChild(el('span', { class: 'key k' + k }));
      item.appendChild(el('span', { class: 'label' }, l.label));
      item.appendChild(el('span', { class: 'last', id: `last-${c.id}-${k}` }, '–'));
      legend.appendChild(item);
    });
    fig.appendChild(legend);
    fig.appendChild(el('p', { class: 'source' }, c.source));
    main.appendChild(fig);
  }
}

function draw(c, data) {
  const svg = document.getElementById('chart-' + c.id);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const t = data.t || [];
  const values = c.lines.map((l) => t.map((_, i) => {
    const v = l.calc ? l.calc(data.series, i) : data.series[l.key][i];
    return v == null || !isFinite(v) ? null : v;
  }));
  let max = 0, points = 0;
  for (const vs of values) {
    let n = 0;
    for (const v of vs) if (v != null) { n++; if (v > max) max = v; }
    points = Math.max(points, n);
  }
  svg.setAttribute('data-points', String(points));
  svg.setAttribute('data-max', String(max));
  const top = niceMax(max);
  /* the x axis spans the points held (at most the range): a young history fills the chart */
  const t1 = t.length ? t[t.length - 1] : Date.now() / 1000;
  const t0 = Math.max(t1 - (data.range === '24h' ? 86400 : 3600), t.length > 1 ? t[0] : t1 - 60);
  const span = t1 - t0;
  const x = (tt) => PAD_L + ((tt - t0) / span) * (W - PAD_L - PAD_R);
  const y = (v) => PAD_T + (1 - v / top) * (H - PAD_T - PAD_B);
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el('svg:line', { class: 'grid', x1: PAD_L, x2: W - PAD_R, y1: y(top * f), y2: y(top * f) }));
    svg.appendChild(el('svg:text', { class: 'axis', x: PAD_L - 4, y: y(top * f) + 4, 'text-anchor': 'end' },
                       fmt(top * f, c.unit)));
  }
  const withDate = data.range === '24h';
  svg.appendChild(el('svg:text', { class: 'axis', x: PAD_L, y: H - 5 }, clock(t0, withDate)));
  svg.appendChild(el('svg:text', { class: 'axis', x: W - PAD_R, y: H - 5, 'text-anchor': 'end' }, clock(t1, withDate)));
  const step = data.step_s || 10;
  values.forEach((vs, k) => {
    /* a gap in the data (no value, or a missing sample) breaks the line */
    let d = '', prevT = null, single = [];
    vs.forEach((v, i) => {
      if (v == null) { prevT = null; return; }
      const cont = prevT != null && t[i] - prevT <= step * 2.5;
      d += (cont ? 'L' : 'M') + x(t[i]).toFixed(1) + ' ' + y(v).toFixed(1);
      if (!cont) single.push([t[i], v]);
      prevT = t[i];
    });
    if (d) svg.appendChild(el('svg:path', { class: 'line s' + k, d }));
    /* points without neighbours would be invisible as a path */
    for (const [tt, v] of single)
      svg.appendChild(el('svg:circle', { class: 'dot f' + k, cx: x(tt).toFixed(1), cy: y(v).toFixed(1), r: 2 }));
    const last = [...vs].reverse().find((v) => v != null);
    document.getElementById(`last-${c.id}-${k}`).textContent = fmt(last, c.unit);
  });
  if (points === 0)
    svg.appendChild(el('svg:text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no data yet'));
}

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  return { status: r.status, body: r.ok ? await r.json() : null };
}

async function refreshData() {
  const status = document.getElementById('status');
  try {
    const r = await getJSON('/dashboard/data?range=' + range);
    if (r.status !== 200) throw new Error('/dashboard/data answered ' + r.status);
    for (const c of CHARTS) draw(c, r.body);
    status.dataset.state = 'ok';
    status.textContent = `${r.body.points} points, every ${r.body.step_s} s · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    status.dataset.state = 'error';
    status.textContent = 'cannot load the data';
    reportError('data: ' + e.message);
  }
}

async function refreshAlarms() {
  const panel = document.getElementById('alarms');
  const list = document.getElementById('alarm-list');
  try {
    const r = await getJSON('/alarms');
    list.textContent = '';
    if (r.status === 404) {
      panel.dataset.state = 'unavailable';
      list.appendChild(el('li', { class: 'none' }, 'alarms: not available'));
      return;
    }
    if (r.status !== 200 || !Array.isArray(r.body)) throw new Error('/alarms answered ' + r.status);
    let firing = 0;
    for (const a of r.body) {
      const st = String(a.state || 'unknown').toLowerCase();
      if (st === 'alarm') firing++;
      const li = el('li', { class: 'alarm st-' + st.replace(/[^a-z_]/g, ''), 'data-name': String(a.name) });
      li.appendChild(el('span', { class: 'state' }, st));
      li.appendChild(el('span', { class: 'name' }, String(a.name)));
      const detail = `${a.value != null ? num(Number(a.value)) : '–'} / ${a.threshold != null ? num(Number(a.threshold)) : '–'}` +
        (a.since ? ' since ' + new Date(typeof a.since === 'number' ? a.since * 1000 : a.since).toLocaleString() : '');
      li.appendChild(el('span', { class: 'detail' }, detail));
      if (a.reason) li.appendChild(el('span', { class: 'reason' }, String(a.reason)));
      list.appendChild(li);
    }
    if (r.body.length === 0) list.appendChild(el('li', { class: 'none' }, 'no alarms defined'));
    panel.dataset.state = firing > 0 ? 'alarm' : 'ok';
  } catch (e) {
    panel.dataset.state = 'error';
    list.textContent = '';
    list.appendChild(el('li', { class: 'none' }, 'alarms: cannot load'));
    reportError('alarms: ' + e.message);
  }
}

function refresh() {
  refreshData();
  refreshAlarms();
}

function setRange(r) {
  range = r;
  for (const b of document.querySelectorAll('#range button'))
    b.setAttribute('aria-pressed', String(b.dataset.range === r));
  const u = new URL(location.href);
  u.searchParams.set('range', r);
  history.replaceState(null, '', u);
  refreshData();
}

document.addEventListener('DOMContentLoaded', () => {
  buildCharts();
  for (const b of document.querySelectorAll('#range button')) b.addEventListener('click', () => setRange(b.dataset.range));
  setRange(range);
  refreshAlarms();
  setInterval(refresh, REFRESH_MS);
});
