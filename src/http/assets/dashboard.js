// The supervisors' dashboard: sign-in, the live board over /dashboard/ws, and charts of
// /api/reports drawn as inline SVG (no library: the server may have no internet).
const $ = (sel) => document.querySelector(`[data-test="${sel}"]`);
const TOKEN_KEY = 'switchboard.dashboard.token';
const NAME_KEY = 'switchboard.dashboard.name';
// Service level is judged against the usual 80 % goal; the time target comes from each queue.
const SL_GOAL = 0.8;
const SVG = 'http://www.w3.org/2000/svg';

let token = sessionStorage.getItem(TOKEN_KEY);
let socket = null;
let retryMs = 1000;
let retryTimer = null;
let board = null;          // last board message
let boardAt = 0;           // performance.now() when it arrived
let lastTodayKey = '';
let chartTimer = null;

function fmtDur(ms) {
  if (ms == null) return '–';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
const pct = (x) => (x == null ? '–' : `${Math.round(x * 1000) / 10}%`);
const slClass = (x) => (x == null ? '' : x >= SL_GOAL ? 'good' : x >= SL_GOAL - 0.2 ? 'fair' : 'bad');
const label = (s) => String(s).replace(/_/g, ' ');
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// ---- sign-in ----
function showLogin(message = '') {
  $('login').hidden = false;
  $('board-view').hidden = true;
  $('topbar-right').hidden = true;
  $('login-error').textContent = message;
}
function showBoard() {
  $('login').hidden = true;
  $('board-view').hidden = false;
  $('topbar-right').hidden = false;
  $('who').textContent = sessionStorage.getItem(NAME_KEY) || '';
}
$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  const supervisor = $('login-id').value.trim();
  const password = $('login-password').value;
  let res;
  try {
    res = await fetch('/api/supervisor/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ supervisor, password }),
    });
  } catch (e) {
    $('login-error').textContent = 'The server cannot be reached.';
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { $('login-error').textContent = body.error || `Sign-in failed (${res.status})`; return; }
  token = body.token;
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(NAME_KEY, body.supervisor?.name || supervisor);
  $('login-password').value = '';
  start();
});
$('logout').addEventListener('click', async () => {
  const t = token;
  stop();
  try { await fetch('/api/supervisor/logout', { method: 'POST', headers: { Authorization: `Bearer ${t}` } }); } catch (e) { /* gone anyway */ }
  showLogin();
});
function stop() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(retryTimer);
  clearInterval(chartTimer);
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
}

// ---- the live socket ----
function setConn(state) {
  $('conn').dataset.state = state;
  $('conn-label').textContent = state;
}
function connect() {
  if (!token) return;
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const tz = -new Date().getTimezoneOffset();
  const ws = new WebSocket(`${proto}://${location.host}/dashboard/ws?token=${encodeURIComponent(token)}&tz_offset_minutes=${tz}`);
  socket = ws;
  let opened = false;
  ws.onopen = () => { opened = true; retryMs = 1000; setConn('live'); };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type === 'board') onBoard(m);
  };
  ws.onclose = async (ev) => {
    if (socket !== ws) return;
    socket = null;
    setConn('reconnecting');
    if (ev.code === 4001 || (!opened && !(await tokenValid()))) {
      stop();
      showLogin('Your sign-in expired: sign in again.');
      return;
    }
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  };
}
async function tokenValid() {
  try {
    const r = await fetch('/api/queues', { headers: { Authorization: `Bearer ${token}` } });
    return r.status !== 401;
  } catch (e) {
    return true; // the server is down, not the login
  }
}

function onBoard(m) {
  board = m;
  boardAt = performance.now();
  renderToday(m.today);
  renderQueues();
  renderAgents();
  fillQueueFilter(m.queues || []);
  // Today's figures moved: the charts of today follow, at most every 10 s.
  const key = m.today ? `${m.today.offered}/${m.today.answered}/${m.today.abandoned}` : '';
  if (key !== lastTodayKey) {
    lastTodayKey = key;
    if (isToday()) scheduleCharts(10000);
  }
}

function renderToday(t) {
  const box = $('today');
  box.replaceChildren();
  const kpi = (name, value, cls = '') => box.append(el('div', { class: 'kpi', 'data-test': `kpi-${name}` },
    el('div', { class: `v ${cls}` }, String(value)), el('div', { class: 'l' }, label(name))));
  if (!t) { kpi('offered', '–'); return; }
  kpi('offered', t.offered);
  kpi('answered', t.answered);
  kpi('abandoned', t.abandoned);
  kpi('service_level', pct(t.service_level), `sl ${slClass(t.service_level)}`);
  kpi('average_answer', fmtDur(t.asa_ms));
  kpi('longest_wait', fmtDur(t.max_wait_ms));
}

function renderQueues() {
  if (!board) return;
  const elapsed = performance.now() - boardAt;
  const box = $('queues');
  box.replaceChildren();
  for (const q of board.queues || []) {
    const today = (board.today?.queues || []).find((x) => x.name === q.name);
    const longest = q.waiting > 0 ? q.longest_wait_ms + elapsed : 0;
    const hot = q.waiting > 0 && longest > q.service_level_ms;
    const a = q.agents || {};
    const sl = today?.service_level;
    const card = el('article', { class: `queue${hot ? ' hot' : ''}`, 'data-test': 'queue', 'data-queue': q.name, 'data-waiting': q.waiting },
      el('h3', {}, q.name),
      el('div', { class: 'big' },
        el('div', {}, el('b', { 'data-test': 'queue-waiting' }, String(q.waiting)), el('span', {}, 'waiting')),
        el('div', {}, el('b', { 'data-test': 'queue-longest' }, fmtDur(longest)), el('span', {}, 'longest wait')),
        el('div', {}, el('b', { class: `sl ${slClass(sl)}`, 'data-test': 'queue-sl' }, pct(sl)), el('span', {}, `SL today (${fmtDur(q.service_level_ms)})`))),
      el('div', { class: 'states' },
        el('span', { class: 'available' }, `${a.available || 0} available`),
        el('span', { class: 'on_call' }, `${(a.on_call || 0) + (a.ringing || 0)} on call`),
        el('span', { class: 'wrap_up' }, `${a.wrap_up || 0} wrap-up`),
        el('span', { class: 'away' }, `${a.away || 0} away`)));
    box.append(card);
  }
  $('board-time').textContent = board.server_time ? `updated ${new Date(board.server_time).toLocaleTimeString()}` : '';
}

function renderAgents() {
  if (!board) return;
  const elapsed = performance.now() - boardAt;
  const body = $('agents');
  body.replaceChildren();
  for (const a of board.agents || []) {
    body.append(el('tr', { 'data-test': 'agent', 'data-agent': a.id, 'data-state': a.state },
      el('td', {}, a.name || a.id),
      el('td', {}, el('span', { class: `badge ${a.state}` }, label(a.state))),
      el('td', {}, fmtDur(a.since_ms_ago + elapsed)),
      el('td', {}, (a.queues || []).join(', ')),
      el('td', { class: 'muted small' }, a.call_id || '')));
  }
}
// Times tick locally between boards.
setInterval(() => { renderQueues(); renderAgents(); }, 1000);

// ---- charts ----
function fillQueueFilter(queues) {
  const sel = $('report-queue');
  const have = new Set([...sel.options].map((o) => o.value));
  for (const q of queues) if (!have.has(q.name)) sel.append(el('option', { value: q.name }, q.name));
}
function todayStr() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}
const isToday = () => $('report-date').value === todayStr();
function scheduleCharts(ms) {
  if (chartTimer) return;
  chartTimer = setTimeout(() => { chartTimer = null; loadCharts(); }, ms);
}
$('report-date').addEventListener('change', () => loadCharts());
$('report-queue').addEventListener('change', () => loadCharts());

async function loadCharts() {
  if (!token) return;
  const day = $('report-date').value || todayStr();
  const [y, mo, d] = day.split('-').map(Number);
  const from = new Date(y, mo - 1, d);
  const to = new Date(y, mo - 1, d + 1);
  const tz = -from.getTimezoneOffset();
  const queue = $('report-queue').value;
  const qs = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), interval: '15m', tz_offset_minutes: String(tz) });
  if (queue) qs.set('queue', queue);
  $('report-status').textContent = 'loading…';
  let res;
  try {
    res = await fetch(`/api/reports?${qs}`, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
  } catch (e) {
    $('report-status').textContent = 'the server cannot be reached';
    return;
  }
  if (res.status === 401) { stop(); showLogin('Your sign-in expired: sign in again.'); return; }
  const body = await res.json().catch(() => null);
  if (!res.ok || !body) { $('report-status').textContent = body?.error || `report failed (${res.status})`; return; }
  const rows = (body.rows || []).filter((r) => (queue ? r.queue === queue : r.queue == null));
  $('report-status').textContent = `${day}: ${body.totals?.offered ?? 0} offered, ${body.totals?.answered ?? 0} answered, ${body.totals?.abandoned ?? 0} abandoned`;
  drawVolume(rows);
  drawLines($('chart-sl'), rows, [{ key: 'service_level', cls: 'sl', name: 'service level', fmt: pct }],
    { max: 1, fmt: pct, target: SL_GOAL, name: 'sl' });
  drawLines($('chart-wait'), rows, [
    { key: 'avg_wait_ms', cls: 'avg', name: 'average wait', fmt: fmtDur },
    { key: 'max_wait_ms', cls: 'max', name: 'longest wait', fmt: fmtDur }],
    { fmt: fmtDur, name: 'wait' });
}

const W = 960, H = 200, L = 48, R = 10, T = 10, B = 24;
function frame(box, rows, maxY, fmtY) {
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const n = Math.max(rows.length, 1);
  const step = (W - L - R) / n;
  for (let i = 0; i <= 4; i++) {
    const v = (maxY * i) / 4, y = H - B - ((H - T - B) * i) / 4;
    s.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: y, y2: y }));
    const t = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }); t.textContent = fmtY(v); s.append(t);
  }
  rows.forEach((r, i) => {
    const when = new Date(r.interval_start);
    if (when.getMinutes() === 0 && when.getHours() % 3 === 0) {
      const t = svg('text', { x: L + i * step, y: H - 6 }); t.textContent = `${String(when.getHours()).padStart(2, '0')}:00`; s.append(t);
    }
  });
  box.replaceChildren(s);
  return { s, step, y: (v) => H - B - ((H - T - B) * v) / (maxY || 1) };
}
function hoverZone(s, x, w, text) {
  const z = svg('rect', { class: 'hover', x, y: T, width: w, height: H - T - B });
  z.addEventListener('mousemove', (ev) => {
    const tip = $('tooltip'); tip.hidden = false; tip.textContent = text;
    tip.style.left = `${ev.clientX + 12}px`; tip.style.top = `${ev.clientY + 12}px`;
  });
  z.addEventListener('mouseleave', () => { $('tooltip').hidden = true; });
  s.append(z);
}
const hhmm = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

function drawVolume(rows) {
  const maxY = Math.max(4, ...rows.map((r) => r.offered));
  const { s, step, y } = frame($('chart-volume'), rows, maxY, (v) => String(Math.round(v)));
  rows.forEach((r, i) => {
    const x = L + i * step + step * 0.12, w = step * 0.76;
    if (r.offered > 0) {
      const g = svg('g', { class: 'bar', 'data-test': 'bar', 'data-offered': r.offered, 'data-interval': r.interval_start });
      const other = Math.max(0, r.offered - r.answered - r.abandoned);
      let base = 0;
      for (const [cls, v] of [['answered', r.answered], ['abandoned', r.abandoned], ['other', other]]) {
        if (v <= 0) continue;
        g.append(svg('rect', { class: cls, x, width: w, y: y(base + v), height: y(base) - y(base + v) }));
        base += v;
      }
      s.append(g);
    }
    hoverZone(s, L + i * step, step, `${hhmm(r.interval_start)}\noffered ${r.offered}\nanswered ${r.answered}\nabandoned ${r.abandoned}\nother ${Math.max(0, r.offered - r.answered - r.abandoned)}`);
  });
}

function drawLines(box, rows, series, opt) {
  const vals = series.flatMap((sr) => rows.map((r) => r[sr.key]).filter((v) => v != null));
  const maxY = opt.max ?? Math.max(20000, ...vals) * 1.1;
  const { s, step, y } = frame(box, rows, maxY, opt.fmt);
  const cx = (i) => L + i * step + step / 2;
  if (opt.target != null) {
    s.append(svg('line', { class: 'line-target', 'data-test': `${opt.name}-target`, x1: L, x2: W - R, y1: y(opt.target), y2: y(opt.target) }));
  }
  for (const sr of series) {
    // A gap where an interval had no calls: null is "nothing to measure", not zero.
    let d = '', pen = 'M';
    rows.forEach((r, i) => {
      const v = r[sr.key];
      if (v == null) { pen = 'M'; return; }
      d += `${pen}${cx(i).toFixed(1)},${y(v).toFixed(1)} `; pen = 'L';
      s.append(svg('circle', { class: `pt-${sr.cls === 'sl' ? '' : sr.cls}`.replace(/-$/, ''), 'data-test': `${opt.name}-point`, cx: cx(i), cy: y(v), r: 2.5 }));
    });
    if (d) s.append(svg('path', { class: `line-${sr.cls}`, d }));
  }
  rows.forEach((r, i) => {
    if (series.every((sr) => r[sr.key] == null)) return;
    hoverZone(s, L + i * step, step, [hhmm(r.interval_start), ...series.map((sr) => `${sr.name} ${sr.fmt(r[sr.key])}`), `offered ${r.offered}`].join('\n'));
  });
}

function start() {
  showBoard();
  setConn('connecting');
  if (!$('report-date').value) $('report-date').value = todayStr();
  connect();
  loadCharts();
  // Today's charts move on with the clock even without new calls.
  clearInterval(chartTimer);
  chartTimer = null;
  setInterval(() => { if (token && isToday()) loadCharts(); }, 60000);
}

if (token) start(); else showLogin();
