// Agent console: signs in over HTTP, then lives on one WebSocket (/agent/ws) whose `hello` is the
// truth after every (re)connect; the call's audio is a non-trickle WebRTC offer sent with `answer`.
// Everything that comes from the server is rendered with textContent, never parsed as HTML.

const TOKEN_KEY = 'switchboard.agent.token';
const AGENT_KEY = 'switchboard.agent.profile';
const EXPIRED_CODE = 4001;
const REPLACED_CODE = 4002; // the same agent signed in elsewhere: reconnecting would steal it back
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const ICE_GATHER_LIMIT_MS = 5000;
const LIVE = new Set(['ringing', 'answering', 'connecting', 'connected']);
const STATE_LABEL = {
  offline: 'Offline', available: 'Available', away: 'Away', ringing: 'Ringing',
  on_call: 'On call', wrap_up: 'Wrap-up',
};
const CANCEL_TEXT = {
  caller_left: 'The caller hung up before you answered.',
  ring_timeout: 'Not answered in time — the call went to the next agent.',
  agent_left: 'The call was withdrawn.',
};
const ENDED_TEXT = { caller: 'The caller hung up.', agent: 'You ended the call.', system: 'The call was ended.' };

// What the tests (and a curious developer) can read; it never holds the token or anything PIN-like.
const app = {
  state: 'offline', since: 0, wrapUpEnd: null, connected: false, agent: null, call: null, pc: null,
  localStream: null, remoteStream: null, queues: [], agents: [], iceServers: [], sent: [], rawAudio: false, loopbackOnly: false,
};
window.__agent = app;

const $ = (t) => document.querySelector(`[data-test="${t}"]`);
let ws = null;
let retry = 0;
let retryTimer = null;
let replaced = false;

// ---- secrets never reach the screen ----------------------------------------------------------

// A key is secret when one of its words is (so `ask_pin`, `pinCode`, `PIN` are hidden but
// `shipping` or `opinion` are not).
const SECRET_WORD = /^(pins?\d*|pincode|passcode|passwords?|passwd|pwd|pass|secrets?|tokens?|otp|cvv\d*|cvc)$/;
function isSecretKey(key) {
  const words = String(key).replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase().split(/[^a-z0-9]+/);
  return words.some((w) => SECRET_WORD.test(w));
}
function redact(value, depth = 0) {
  if (depth > 8) return undefined;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (!isSecretKey(k)) out[k] = redact(v, depth + 1);
    return out;
  }
  return value;
}

// ---- small helpers ---------------------------------------------------------------------------

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
function text(v) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
function humanKey(k) {
  const s = String(k).replace(/[_-]+/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
function el(tag, attrs = {}, content) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (content !== undefined) node.textContent = content;
  return node;
}
function fillFields(dl, obj, skip = []) {
  dl.replaceChildren();
  for (const [k, v] of Object.entries(obj || {})) {
    if (skip.includes(k)) continue;
    dl.append(el('dt', {}, humanKey(k)), el('dd', { 'data-key': k }, text(v)));
  }
  return dl.childElementCount > 0;
}
function toast(message, kind = 'info') {
  const t = el('div', { class: `toast ${kind}`, 'data-test': 'toast' }, message);
  $('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 5000);
}
function send(msg) {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    toast('Not connected to the server — try again in a moment.', 'error');
    return false;
  }
  ws.send(JSON.stringify(msg));
  app.sent.push(msg.type);
  if (app.sent.length > 100) app.sent.shift();
  return true;
}

// ---- sign-in and the socket ------------------------------------------------------------------

function showLogin(message = '') {
  $('login-form').hidden = false;
  $('console').hidden = true;
  $('status-bar').hidden = true;
  $('connection').hidden = true;
  $('login-error').textContent = message;
  $('login-agent').focus();
}

function showConsole() {
  $('login-form').hidden = true;
  $('console').hidden = false;
  $('status-bar').hidden = false;
  $('agent-name').textContent = app.agent ? app.agent.name || app.agent.id || '' : '';
}

async function login(event) {
  event.preventDefault();
  const agent = $('login-agent').value.trim();
  const password = $('login-password').value;
  if (!agent || !password) {
    $('login-error').textContent = 'Enter your agent ID and password.';
    return;
  }
  const button = $('login-submit');
  button.disabled = true;
  $('login-error').textContent = '';
  try {
    const res = await fetch('/api/agent/login', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent, password }), credentials: 'same-origin',
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || typeof body.token !== 'string') {
      $('login-error').textContent = res.status === 401
        ? 'Wrong agent ID or password.'
        : (body.error ? String(body.error) : `Sign-in failed (HTTP ${res.status}).`);
      return;
    }
    $('login-password').value = '';
    sessionStorage.setItem(TOKEN_KEY, body.token);
    app.agent = redact(body.agent || { id: agent });
    sessionStorage.setItem(AGENT_KEY, JSON.stringify(app.agent));
    unlockAudio();
    showConsole();
    connect();
  } catch {
    $('login-error').textContent = 'Cannot reach the server. Check your connection and try again.';
  } finally {
    button.disabled = false;
  }
}

function connect() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) { showLogin(); return; }
  clearTimeout(retryTimer);
  if (ws) { const old = ws; ws = null; old.close(1000); }
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const sock = new WebSocket(`${proto}//${location.host}/agent/ws?token=${encodeURIComponent(token)}`);
  ws = sock;
  replaced = false;
  sock.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg && typeof msg.type === 'string') handle(msg);
  };
  sock.onclose = (e) => {
    if (ws !== sock) return; // a socket we already replaced or closed on purpose
    ws = null;
    app.connected = false;
    if (e.code === EXPIRED_CODE) {
      endSession('Your session has expired. Please sign in again.');
      return;
    }
    if (e.code === REPLACED_CODE || replaced) {
      replacedElsewhere();
      return;
    }
    const base = BACKOFF_MS[Math.min(retry, BACKOFF_MS.length - 1)];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    retry += 1;
    showConnection(`Connection lost — reconnecting in ${Math.ceil(delay / 1000)} s…`);
    retryTimer = setTimeout(connect, delay);
    render();
  };
}

function showConnection(message, withReconnect = false) {
  $('connection-text').textContent = message;
  $('reconnect').hidden = !withReconnect;
  $('connection').hidden = !message;
}

// Two tabs of one agent would take the session from each other forever; the older one stops and
// lets the person choose.
function replacedElsewhere() {
  clearTimeout(retryTimer);
  teardownMedia();
  stopRing();
  Object.assign(app, { connected: false, call: null });
  showConnection('You are signed in on another tab or device, so this one stopped.', true);
  render();
}

// The sign-out button: the server forgets the token (so a copy of it is worthless), then the page.
async function logout() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  endSession('');
  if (t) {
    try { await fetch('/api/agent/logout', { method: 'POST', headers: { Authorization: `Bearer ${t}` } }); } catch (e) { /* gone anyway */ }
  }
}

function endSession(message) {
  clearTimeout(retryTimer);
  const sock = ws;
  ws = null;
  if (sock) sock.close(1000);
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(AGENT_KEY);
  teardownMedia();
  stopRing();
  Object.assign(app, { state: 'offline', connected: false, call: null, wrapUpEnd: null });
  render();
  showLogin(message);
}

// ---- server messages -------------------------------------------------------------------------

function setState(state, sinceMs, wrapUpMs) {
  app.state = STATE_LABEL[state] ? state : app.state;
  // Elapsed time in the state; a value that looks like an epoch timestamp is taken as one.
  const since = Number(sinceMs) || 0;
  app.since = performance.now() - (since > 1e12 ? Math.max(0, Date.now() - since) : since);
  app.wrapUpEnd = state === 'wrap_up' && Number.isFinite(Number(wrapUpMs)) && wrapUpMs !== null
    ? performance.now() + Number(wrapUpMs) : null;
  if (state === 'available' || state === 'away') {
    // Idle per the server: no call is ours any more, whatever this page still shows.
    if (app.call) { teardownMedia(); stopRing(); app.call = null; }
  }
}

const plain = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

function newCall(msg, phase) {
  const c = redact(msg);
  return {
    id: String(msg.call_id), queue: c.queue ?? null, caller: c.caller ?? null, dialed: c.dialed ?? null,
    waitedAtRing: Number(c.waited_ms) || 0, ringAt: performance.now(),
    account: c.account && typeof c.account === 'object' && !Array.isArray(c.account) ? c.account : null,
    ivrPath: Array.isArray(c.ivr_path) ? c.ivr_path : [], digits: plain(c.digits), vars: plain(c.vars),
    phase, muted: false, held: false, connectedAt: null, endedBy: null, endedAt: null,
    callback: c.callback && typeof c.callback === 'object' ? { number: String(c.callback.number ?? ''), note: String(c.callback.note ?? '') } : null,
  };
}

function markConnected(call) {
  stopRing();
  if (call.phase === 'connected') return;
  call.phase = 'connected';
  call.connectedAt = performance.now();
}
function markEnded(call, by) {
  stopRing();
  teardownMedia();
  if (call.phase === 'ended') return;
  call.phase = 'ended';
  call.endedBy = by;
  call.endedAt = performance.now();
}

function handle(msg) {
  const call = app.call;
  const mine = call && String(msg.call_id) === call.id;
  switch (msg.type) {
    case 'hello': {
      app.connected = true;
      retry = 0;
      showConnection('');
      if (msg.agent) {
        app.agent = redact(msg.agent);
        sessionStorage.setItem(AGENT_KEY, JSON.stringify(app.agent));
      }
      app.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
      showConsole();
      // A reload or reconnect: the server's idea of our call wins over whatever is left here.
      if (msg.call && msg.call.call_id !== undefined && (!call || String(msg.call.call_id) !== call.id)) {
        teardownMedia();
        app.call = newCall(msg.call, { ringing: 'ringing', wrap_up: 'ended' }[msg.state] || 'lost');
      } else if (call && !['ringing', 'on_call', 'wrap_up'].includes(msg.state)) {
        teardownMedia();
        app.call = null;
      } else if (call && msg.state === 'ringing' && call.phase !== 'ringing') {
        teardownMedia();
        call.phase = 'ringing';
      } else if (call && msg.state === 'wrap_up' && LIVE.has(call.phase)) {
        teardownMedia();
        call.phase = 'ended';
      } else if (call && msg.state === 'on_call' && !app.pc) {
        call.phase = 'lost';
      }
      setState(msg.state, msg.since_ms, msg.wrap_up_ms);
      if (app.state === 'ringing' && app.call && app.call.phase === 'ringing') startRing(); else stopRing();
      break;
    }
    case 'state':
      setState(msg.state, msg.since_ms, msg.wrap_up_ms);
      if (msg.state !== 'ringing') stopRing();
      // The state is the server's word even when `connected` / `call_ended` got lost or reordered.
      if (call && msg.state === 'on_call' && call.phase === 'connecting') markConnected(call);
      if (call && msg.state === 'wrap_up' && LIVE.has(call.phase)) markEnded(call, 'system');
      break;
    case 'ring':
      if (call && LIVE.has(call.phase) && !mine && call.phase !== 'ringing') break; // busy: ignore
      teardownMedia();
      app.call = newCall(msg, 'ringing');
      app.state = 'ringing';
      app.since = performance.now();
      startRing();
      break;
    case 'callback_accepted':
      // The offer went with the Accept; the server answers it once the customer picks up.
      if (!mine) break;
      if (call.phase !== 'connected') call.phase = 'connecting';
      toast(String(msg.message || 'Callback accepted.'));
      break;
    case 'ring_cancelled':
      if (!mine) break;
      stopRing();
      teardownMedia();
      app.call = null;
      toast(CANCEL_TEXT[msg.reason] || 'The call is no longer ringing.');
      break;
    case 'answer_sdp':
      if (!mine || !app.pc || typeof msg.sdp !== 'string') break;
      app.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp }).catch((err) => {
        toast(`Audio could not be set up: ${err.message}`, 'error');
      });
      break;
    case 'connected':
      if (mine) markConnected(call);
      break;
    case 'call_ended':
      if (!mine) break;
      markEnded(call, 'system');
      // Whoever the server names wins over a guess made when `state: wrap_up` came first.
      call.endedBy = ['caller', 'agent', 'system'].includes(msg.by) ? msg.by : 'system';
      break;
    case 'queues':
      app.queues = Array.isArray(msg.queues) ? msg.queues : [];
      renderQueues();
      break;
    case 'agents':
      app.agents = Array.isArray(msg.agents) ? msg.agents : [];
      renderAgents();
      break;
    case 'replaced':
      replaced = true;
      break;
    case 'error':
      toast(String(msg.message || 'The server reported an error.'), 'error');
      break;
    default:
      break;
  }
  render();
}

// ---- ringing ---------------------------------------------------------------------------------

// Browsers only let audio play after a gesture; priming the element on the sign-in click keeps
// the ring audible later even though it starts without one.
function unlockAudio() {
  const a = $('ring-audio');
  a.muted = true;
  a.play().then(() => { a.pause(); a.currentTime = 0; a.muted = false; }).catch(() => { a.muted = false; });
}
function startRing() {
  const a = $('ring-audio');
  a.muted = false;
  if (!a.paused) return;
  a.currentTime = 0;
  a.play().catch(() => toast('Click anywhere on the page to hear the ringer.', 'error'));
}
function stopRing() {
  const a = $('ring-audio');
  a.pause();
  a.currentTime = 0;
}

// ---- the call's audio ------------------------------------------------------------------------

// G.711 first: the far end is a SIP caller who most likely speaks it, so the bridge need not
// transcode. Other codecs stay offered in case the server prefers them.
function preferG711(transceiver) {
  if (typeof transceiver.setCodecPreferences !== 'function' || !window.RTCRtpReceiver?.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities('audio');
  if (!caps) return;
  const rank = (c) => ({ 'audio/pcmu': 0, 'audio/pcma': 1 }[c.mimeType.toLowerCase()] ?? 2);
  try { transceiver.setCodecPreferences([...caps.codecs].sort((a, b) => rank(a) - rank(b))); } catch { /* keep defaults */ }
}

function iceGathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener('icegatheringstatechange', check); resolve(); };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, ICE_GATHER_LIMIT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// Tests on one machine (`/agent?ice=loopback`) keep the server's connectivity checks on the
// loopback interface instead of every address this host has.
function loopbackCandidates(sdp) {
  return sdp.split('\r\n').filter((line) => {
    if (!line.startsWith('a=candidate:')) return true;
    const addr = line.split(' ')[4] || '';
    return addr.startsWith('127.') || addr === '::1';
  }).join('\r\n');
}

async function answer() {
  const call = app.call;
  if (!call || call.phase !== 'ringing') return;
  call.phase = 'answering';
  stopRing();
  render();
  let stream = null;
  try {
    const audio = app.rawAudio ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false } : true;
    stream = await navigator.mediaDevices.getUserMedia({ audio });
  } catch (err) {
    if (app.call === call) call.phase = 'ringing';
    toast(`Microphone unavailable (${err.name || err.message}). Allow microphone access, then answer again or decline.`, 'error');
    render();
    return;
  }
  if (app.call !== call || call.phase !== 'answering') { stream.getTracks().forEach((t) => t.stop()); return; }
  const pc = new RTCPeerConnection({ iceServers: app.iceServers });
  app.pc = pc;
  app.localStream = stream;
  const [track] = stream.getAudioTracks();
  const transceiver = pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
  preferG711(transceiver);
  pc.ontrack = (e) => {
    const remote = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
    app.remoteStream = remote;
    const out = $('remote-audio');
    out.srcObject = remote;
    out.play().catch(() => {});
  };
  pc.onconnectionstatechange = () => {
    if (app.pc === pc && pc.connectionState === 'failed') toast('The audio connection failed.', 'error');
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
  } catch (err) {
    toast(`Could not set up audio: ${err.message}`, 'error');
    if (app.pc === pc) { teardownMedia(); if (app.call === call) call.phase = 'ringing'; render(); }
    return;
  }
  if (app.pc !== pc || app.call !== call) return; // cancelled while gathering
  const sdp = app.loopbackOnly ? loopbackCandidates(pc.localDescription.sdp) : pc.localDescription.sdp;
  if (send({ type: 'answer', call_id: call.id, sdp })) {
    call.phase = 'connecting';
  } else {
    teardownMedia();
    call.phase = 'ringing';
  }
  applyMicEnabled();
  render();
}

function teardownMedia() {
  if (app.pc) { try { app.pc.close(); } catch { /* already closed */ } }
  if (app.localStream) app.localStream.getTracks().forEach((t) => t.stop());
  app.pc = null;
  app.localStream = null;
  app.remoteStream = null;
  $('remote-audio').srcObject = null;
}

function applyMicEnabled() {
  const call = app.call;
  if (!app.localStream || !call) return;
  for (const t of app.localStream.getAudioTracks()) t.enabled = !call.muted && !call.held;
}

// ---- agent actions ---------------------------------------------------------------------------

function decline() {
  const call = app.call;
  if (!call || !['ringing', 'answering'].includes(call.phase)) return;
  send({ type: 'decline', call_id: call.id });
  stopRing();
  teardownMedia();
  app.call = null;
  render();
}
function hangup() {
  const call = app.call;
  if (!call || !LIVE.has(call.phase) || call.phase === 'ringing') return;
  send({ type: 'hangup', call_id: call.id });
  markEnded(call, 'agent');
  render();
}
function toggle(kind) {
  const call = app.call;
  if (!call || call.phase !== 'connected') return;
  const on = !call[kind];
  if (!send({ type: kind === 'muted' ? 'mute' : 'hold', call_id: call.id, on })) return;
  call[kind] = on;
  applyMicEnabled();
  render();
}
function dtmf(digit) {
  const call = app.call;
  if (!call || call.phase !== 'connected' || !/^[0-9*#]$/.test(digit)) return;
  if (!send({ type: 'dtmf', call_id: call.id, digit })) return;
  const out = $('dtmf-sent');
  out.textContent = (out.textContent + digit).slice(-20);
}
function transfer(event) {
  event.preventDefault();
  const call = app.call;
  const choice = $('transfer-target').value;
  if (!call || call.phase !== 'connected' || !choice) return;
  const [kind, ...rest] = choice.split(':');
  const target = rest.join(':');
  if (send({ type: 'transfer', call_id: call.id, [kind === 'agent' ? 'agent' : 'queue']: target })) {
    toast(`Transferring to ${kind === 'agent' ? 'agent' : 'queue'} ${target}…`);
  }
}
function setAvailability(state) {
  if (app.state === state || !['available', 'away'].includes(state)) return;
  send({ type: 'state', state });
}
function wrapUpDone() {
  if (app.state !== 'wrap_up' && !(app.call && app.call.phase === 'ended')) return;
  send({ type: 'wrap_up_done' });
}

// ---- rendering -------------------------------------------------------------------------------

function renderQueues() {
  const body = $('queues').tBodies[0];
  body.replaceChildren();
  for (const q of app.queues) {
    const tr = el('tr', { 'data-queue': String(q.name) });
    const waiting = Number(q.waiting) || 0;
    tr.append(
      el('th', { scope: 'row' }, text(q.name)),
      el('td', { class: waiting > 0 ? 'num hot' : 'num' }, String(waiting)),
      el('td', { class: 'num' }, waiting > 0 ? clock(Number(q.longest_wait_ms) || 0) : '—'),
      el('td', { class: 'num' }, text(q.agents && q.agents.available)),
    );
    body.append(tr);
  }
  $('queues-empty').hidden = app.queues.length > 0;
  const group = $('transfer-queues');
  group.replaceChildren(...app.queues.map((q) => el('option', { value: `queue:${q.name}` }, `${q.name} (${Number(q.waiting) || 0} waiting)`)));
}

function renderAgents() {
  const me = app.agent && app.agent.id;
  const list = $('agents');
  list.replaceChildren();
  const others = [];
  for (const a of app.agents) {
    const li = el('li', { 'data-agent': String(a.id), 'data-state': String(a.state) });
    li.append(el('span', { class: 'dot', 'aria-hidden': 'true' }), el('span', { class: 'agent-name' }, text(a.name || a.id)),
      el('span', { class: 'agent-state' }, STATE_LABEL[a.state] || text(a.state)));
    list.append(li);
    if (a.id !== me) others.push(a);
  }
  $('transfer-agents').replaceChildren(...others.map((a) => el('option', { value: `agent:${a.id}` },
    `${a.name || a.id} — ${STATE_LABEL[a.state] || a.state}`)));
}

function renderCall(now) {
  const call = app.call;
  const card = $('call-card');
  card.hidden = !call;
  $('idle-card').hidden = !!call || (app.connected && app.state === 'wrap_up');
  const ended = app.state === 'wrap_up' || (call && call.phase === 'ended');
  $('wrapup-panel').hidden = !ended;
  $('call-ended-by').textContent = call ? ENDED_TEXT[call.endedBy] || 'Call ended.' : 'Wrap-up.';
  if (!call) {
    $('ring-banner').hidden = true;
    const [title, body] = !app.connected ? ['Connecting…', 'Getting your status from the server.'] : {
      available: ['Waiting for calls', 'The next caller who needs you will ring here.'],
      ringing: ['Incoming call…', 'Waiting for the caller\'s details.'],
      on_call: ['On a call', 'This page was reloaded during the call and no longer carries its audio.'],
    }[app.state] || ['You are away', 'Set yourself Available to start receiving calls.'];
    $('idle-title').textContent = title;
    $('idle-text').textContent = body;
    return;
  }
  card.dataset.phase = call.phase;
  const ringing = call.phase === 'ringing' || call.phase === 'answering';
  $('ring-banner').hidden = !ringing;
  const waited = call.waitedAtRing + (call.connectedAt ?? call.endedAt ?? now) - call.ringAt;
  $('ring-title').textContent = call.callback
    ? `Callback: ${call.callback.number}, question: ${call.callback.note || '—'}`
    : `Incoming call — ${text(call.caller)}`;
  $('ring-detail').textContent = [call.account && call.account.name, call.queue && `queue ${call.queue}`,
    `waited ${clock(waited)}`].filter(Boolean).join(' · ');
  $('answer').disabled = call.phase !== 'ringing';
  $('answer').textContent = call.phase === 'answering' ? 'Connecting…' : (call.callback ? 'Accept' : 'Answer');
  $('call-phase').textContent = {
    ringing: 'Ringing', answering: 'Answering', connecting: 'Connecting audio', connected: 'On call',
    ended: 'Call ended', lost: 'Call in progress (reconnected)',
  }[call.phase] || call.phase;
  $('call-caller').textContent = text(call.caller);
  $('call-queue').textContent = text(call.queue);
  $('call-dialed').textContent = text(call.dialed);
  $('call-waited').textContent = clock(waited);
  const talkEnd = call.endedAt ?? now;
  $('talk-timer').textContent = call.connectedAt ? clock(talkEnd - call.connectedAt) : '00:00';

  const acct = call.account && typeof call.account === 'object' ? call.account : null;
  $('account-none').hidden = !!acct;
  $('account-fields').hidden = !acct;
  $('account-name').textContent = acct ? text(acct.name) : '';
  $('account-id').textContent = acct ? text(acct.id) : '';
  $('account-tier').textContent = acct ? text(acct.tier) : '';
  if (acct) $('account-tier').dataset.tier = String(acct.tier ?? '').toLowerCase();
  $('account-extra').hidden = !fillFields($('account-extra'), acct, ['id', 'name', 'tier']);

  const chips = $('call-ivr-path');
  if (chips.dataset.call !== call.id) {
    chips.dataset.call = call.id;
    chips.replaceChildren(...call.ivrPath.map((step) => el('li', { class: 'chip' }, text(step))));
    if (!fillFields($('call-digits'), call.digits)) $('call-digits').replaceChildren(el('dd', { class: 'muted' }, 'Nothing'));
    $('call-vars-block').hidden = !fillFields($('call-vars'), call.vars);
    $('dtmf-sent').textContent = '';
  }

  const live = call.phase === 'connected';
  for (const t of ['mute', 'hold', 'keypad-toggle', 'transfer', 'transfer-target']) $(t).disabled = !live;
  $('hangup').disabled = !['connecting', 'connected', 'lost'].includes(call.phase);
  $('mute').setAttribute('aria-pressed', String(call.muted));
  $('mute').textContent = call.muted ? 'Unmute' : 'Mute';
  $('hold').setAttribute('aria-pressed', String(call.held));
  $('hold').textContent = call.held ? 'Resume' : 'Hold';
  $('call-controls').hidden = ringing || call.phase === 'ended';
  $('transfer-form').hidden = ringing || call.phase === 'ended';
  if (!live) { $('keypad').hidden = true; $('keypad-toggle').setAttribute('aria-expanded', 'false'); }
}

function renderStatus(now) {
  const pill = $('state');
  const state = app.connected ? app.state : 'offline';
  pill.dataset.state = state;
  $('state-label').textContent = app.connected ? STATE_LABEL[state] : 'Offline';
  $('state-timer').textContent = app.connected ? clock(now - app.since) : '';
  const wrap = app.state === 'wrap_up' && app.wrapUpEnd !== null && app.connected;
  const left = wrap ? Math.max(0, app.wrapUpEnd - now) : 0;
  $('wrapup-countdown').hidden = !wrap;
  $('wrapup-countdown').textContent = wrap ? `Wrap-up ends in ${clock(left + 999)}` : '';
  $('wrapup-text').textContent = wrap ? `You become available in ${clock(left + 999)}.` : 'Finish your notes.';
  for (const b of document.querySelectorAll('[data-set-state]')) {
    const target = b.dataset.setState;
    b.setAttribute('aria-pressed', String(app.state === target));
    b.disabled = !app.connected || !['available', 'away'].includes(app.state);
  }
  $('wrap-up-done').disabled = !app.connected;
  const c = app.call;
  document.title = c && (c.phase === 'ringing')
    ? `☎ Ringing — ${text(c.caller)}`
    : `${app.connected ? STATE_LABEL[app.state] : 'Offline'} · Agent console`;
}

let lastAnnounced = null;
function render() {
  const now = performance.now();
  renderStatus(now);
  renderCall(now);
  const ringingId = app.call && app.call.phase === 'ringing' ? app.call.id : null;
  if (ringingId !== lastAnnounced) {
    // Screen readers hear a ring once per call, not on every tick.
    $('ring-announce').textContent = ringingId ? `Incoming call from ${text(app.call.caller)}` : '';
    lastAnnounced = ringingId;
  }
}

// ---- wiring ----------------------------------------------------------------------------------

function init() {
  const params = new URLSearchParams(location.search);
  app.rawAudio = params.get('audio') === 'raw';
  app.loopbackOnly = params.get('ice') === 'loopback';
  $('login-form').querySelector('form').addEventListener('submit', login);
  $('answer').addEventListener('click', answer);
  $('decline').addEventListener('click', decline);
  $('hangup').addEventListener('click', hangup);
  $('mute').addEventListener('click', () => toggle('muted'));
  $('hold').addEventListener('click', () => toggle('held'));
  $('wrap-up-done').addEventListener('click', wrapUpDone);
  $('transfer-form').addEventListener('submit', transfer);
  $('logout').addEventListener('click', logout);
  $('reconnect').addEventListener('click', () => { retry = 0; showConnection('Connecting…'); connect(); });
  for (const b of document.querySelectorAll('[data-set-state]')) b.addEventListener('click', () => setAvailability(b.dataset.setState));
  for (const b of document.querySelectorAll('[data-digit]')) b.addEventListener('click', () => dtmf(b.dataset.digit));
  $('keypad-toggle').addEventListener('click', () => {
    const open = $('keypad').hidden;
    $('keypad').hidden = !open;
    $('keypad-toggle').setAttribute('aria-expanded', String(open));
  });
  $('keypad').addEventListener('keydown', (e) => {
    if (/^[0-9*#]$/.test(e.key)) { e.preventDefault(); dtmf(e.key); }
  });
  document.addEventListener('click', () => {
    if (app.call && app.call.phase === 'ringing' && $('ring-audio').paused) startRing();
  });
  setInterval(render, 250);
  const saved = sessionStorage.getItem(AGENT_KEY);
  try { app.agent = saved ? JSON.parse(saved) : null; } catch { app.agent = null; }
  if (sessionStorage.getItem(TOKEN_KEY)) { showConsole(); connect(); } else showLogin();
  render();
}

init();
