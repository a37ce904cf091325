// A stand-in for switchboard's agent side, for testing the console without the Rust server:
// serves src/http/assets/ the way the server does, speaks the /agent/ws protocol, and answers the
// browser's WebRTC offer from a second headless Chromium page that plays a tone as "the caller"
// and measures what the agent sends back.
//
//   node mock-server.mjs [--port 8099] [--tone-hz 440] [--ring-delay-ms 500] [--wrap-up-ms 10000]
//
// Control routes for tests (?agent=alice by default): GET /mock/log (what the browser sent),
// GET /mock/caller-audio (what the caller heard), POST /mock/ring, /mock/cancel?reason=,
// /mock/caller-hangup, /mock/drop (socket cut), /mock/expire (close 4001), /mock/reset.
import http from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ASSETS = path.resolve(HERE, '../../src/http/assets');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const ROUTES = {
  '/agent': ['agent.html', 'text/html; charset=utf-8'],
  '/agent/agent.js': ['agent.js', 'text/javascript; charset=utf-8'],
  '/agent/agent.css': ['agent.css', 'text/css; charset=utf-8'],
  '/agent/ring.wav': ['ring.wav', 'audio/wav'],
};

const CALLER_PAGE = `<!doctype html><meta charset="utf-8"><title>mock caller</title><script>
let pc = null, ctx = null, analyser = null, peak = 0, loud = 0, packetsReceived = 0;
window.caller = {
  async answer(offer, toneHz) {
    peak = 0; loud = 0; packetsReceived = 0;
    ctx = new AudioContext();
    await ctx.resume();
    const osc = ctx.createOscillator();
    osc.frequency.value = toneHz;
    const gain = ctx.createGain();
    gain.gain.value = 0.3;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    pc = new RTCPeerConnection();
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      const a = document.createElement('audio'); a.autoplay = true; a.srcObject = stream; document.body.append(a);
      const src = ctx.createMediaStreamSource(stream);
      analyser = ctx.createAnalyser(); analyser.fftSize = 2048; src.connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      setInterval(() => {
        analyser.getFloatTimeDomainData(buf);
        let s = 0; for (const v of buf) s += v * v;
        const rms = Math.sqrt(s / buf.length);
        peak = Math.max(peak, rms); if (rms > 0.01) loud += 1;
      }, 50);
    };
    await pc.setRemoteDescription({ type: 'offer', sdp: offer });
    const [tr] = pc.getTransceivers();
    await tr.sender.replaceTrack(dest.stream.getAudioTracks()[0]);
    tr.direction = 'sendrecv';
    // Like the real bridge: answer with G.711 so the agent's side is tested the way it will run.
    const caps = RTCRtpReceiver.getCapabilities('audio').codecs;
    tr.setCodecPreferences(caps.filter((c) => /pcmu|telephone-event/i.test(c.mimeType)));
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((r) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 5000); });
    }
    // Loopback only, like the console under test: no connectivity checks to other local addresses.
    const lines = pc.localDescription.sdp.split(String.fromCharCode(13, 10));
    const local = (a) => a.startsWith('127.') || a === '::1';
    return lines.filter((l) => !l.startsWith('a=candidate:') || local(l.split(' ')[4] || '')).join(String.fromCharCode(13, 10));
  },
  async audio() {
    if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') packetsReceived = s.packetsReceived; });
    return { peak, loud, packetsReceived, connection: pc ? pc.connectionState : 'closed' };
  },
  async hangup() { if (pc) { await window.caller.audio(); pc.close(); } pc = null; },
};
</script>`;

export async function startMock(opts = {}) {
  const toneHz = opts.toneHz ?? 440;
  const ringDelayMs = opts.ringDelayMs ?? 500;
  const wrapUpMs = opts.wrapUpMs ?? 10000;
  const accounts = opts.agents ?? {
    alice: { password: 'pw', name: 'Alice Martins', skills: { billing: 4, en: 5 }, queues: ['billing', 'support'] },
    bob: { password: 'pw2', name: 'Bob Silva', skills: { support: 3 }, queues: ['support'] },
  };
  const log = [];
  const tokens = new Map(); // token -> agent id
  const agents = new Map(); // id -> { state, since, call, sockets:Set, wrapTimer, ringTimer }
  for (const id of Object.keys(accounts)) agents.set(id, { state: 'away', since: Date.now(), call: null, sockets: new Set() });
  let callSeq = 0;
  let browser = null;
  let profile = null;
  let callerPage = null;

  async function caller() {
    if (!callerPage) {
      profile = await mkdtemp(path.join(tmpdir(), 'mock-caller-'));
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, headless: false,
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--allow-loopback-in-peer-connection',
          '--autoplay-policy=no-user-gesture-required', '--no-first-run', '--disable-background-networking'],
      });
      callerPage = browser.pages()[0] || await browser.newPage();
      await callerPage.goto(`${base}/mock/caller`);
    }
    return callerPage;
  }

  const profileOf = (id) => ({ id, name: accounts[id].name, skills: accounts[id].skills, queues: accounts[id].queues });
  const sendTo = (id, msg) => { for (const s of agents.get(id).sockets) s.send(JSON.stringify(msg)); };
  function setState(id, state, extra = {}) {
    const a = agents.get(id);
    a.state = state;
    a.since = Date.now();
    clearTimeout(a.wrapTimer);
    clearTimeout(a.ringTimer);
    sendTo(id, { type: 'state', state, since_ms: 0, ...extra });
    if (state === 'wrap_up') a.wrapTimer = setTimeout(() => setState(id, 'available'), wrapUpMs);
    if (state === 'available' && ringDelayMs >= 0) a.ringTimer = setTimeout(() => ring(id), ringDelayMs);
    broadcastAgents();
  }
  function ringMessage(call) {
    return {
      type: 'ring', call_id: call.id, queue: 'billing', caller: '+5511987654321', dialed: '7000',
      waited_ms: 42000 + (Date.now() - call.at),
      account: { id: 'AC-1001', name: 'Maria Oliveira', tier: 'gold', city: 'São Paulo', pin: '7395' },
      ivr_path: ['welcome', 'main-menu', 'ask-account', 'ask-pin', 'billing-queue'],
      digits: { 'main-menu': '2', 'ask-account': '1001', 'ask-pin': '7395' },
      vars: { open_invoices: 2, balance: 'R$ 1.250,00', last_contact: '2026-10-30', card_cvv: '918' },
    };
  }
  function ring(id) {
    const a = agents.get(id);
    if (a.state !== 'available') return;
    callSeq += 1;
    a.call = { id: `c-${callSeq}`, at: Date.now(), phase: 'ringing' };
    sendTo(id, ringMessage(a.call));
    setState(id, 'ringing');
  }
  function endCall(id, by) {
    const a = agents.get(id);
    if (!a.call) return;
    const callId = a.call.id;
    a.call = null;
    if (callerPage) callerPage.evaluate(() => window.caller.hangup()).catch(() => {});
    sendTo(id, { type: 'call_ended', call_id: callId, by });
    setState(id, 'wrap_up', { wrap_up_ms: wrapUpMs });
  }
  function queuesMessage() {
    return { type: 'queues', queues: [
      { name: 'billing', waiting: 1, longest_wait_ms: 42000, agents: { available: 0, on_call: 1 } },
      { name: 'support', waiting: 0, longest_wait_ms: 0, agents: { available: 1, on_call: 0 } },
    ] };
  }
  function broadcastAgents() {
    const msg = { type: 'agents', agents: [...agents].map(([id, a]) => ({ id, name: accounts[id].name, state: a.state })) };
    for (const id of agents.keys()) sendTo(id, msg);
  }

  async function onMessage(id, msg) {
    const candidates = typeof msg.sdp === 'string'
      ? msg.sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).map((l) => l.split(' ')[4]) : undefined;
    log.push({ ...msg, from: id, sdp: msg.sdp ? '<sdp>' : undefined, candidates });
    const a = agents.get(id);
    const call = a.call;
    const mine = call && msg.call_id === call.id;
    switch (msg.type) {
      case 'state':
        if (['available', 'away'].includes(msg.state) && ['available', 'away'].includes(a.state)) setState(id, msg.state);
        else sendTo(id, { type: 'error', message: `cannot go ${msg.state} while ${a.state}` });
        break;
      case 'wrap_up_done':
        if (a.state === 'wrap_up') setState(id, 'available');
        break;
      case 'decline':
        if (mine && call.phase === 'ringing') { a.call = null; setState(id, 'available'); }
        break;
      case 'answer': {
        if (!mine || call.phase !== 'ringing') { sendTo(id, { type: 'error', message: 'no such call' }); break; }
        call.phase = 'answering';
        const page = await caller();
        const sdp = await page.evaluate(([offer, hz]) => window.caller.answer(offer, hz), [msg.sdp, toneHz]);
        if (a.call !== call) break;
        sendTo(id, { type: 'answer_sdp', call_id: call.id, sdp });
        call.phase = 'connected';
        sendTo(id, { type: 'connected', call_id: call.id });
        setState(id, 'on_call');
        break;
      }
      case 'hangup':
        if (mine) endCall(id, 'agent');
        break;
      case 'transfer':
        if (mine) endCall(id, 'agent');
        break;
      case 'hold': case 'mute': case 'dtmf':
        break;
      default:
        sendTo(id, { type: 'error', message: `unknown message ${msg.type}` });
    }
  }

  async function readBody(req) {
    const chunks = [];
    let size = 0;
    for await (const c of req) { size += c.length; if (size > 65536) throw new Error('too large'); chunks.push(c); }
    return Buffer.concat(chunks).toString('utf8');
  }
  const json = (res, code, body) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    try {
      if (req.method === 'GET' && ROUTES[url.pathname]) {
        const [file, type] = ROUTES[url.pathname];
        res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(await readFile(path.join(ASSETS, file)));
      } else if (req.method === 'GET' && url.pathname === '/mock/caller') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(CALLER_PAGE);
      } else if (req.method === 'POST' && url.pathname === '/api/agent/login') {
        let body = {};
        try { body = JSON.parse(await readBody(req)); } catch { /* empty body → 401 below */ }
        const acct = accounts[body.agent];
        if (!acct || acct.password !== body.password) return json(res, 401, { error: 'invalid credentials' });
        const token = randomBytes(16).toString('hex');
        tokens.set(token, body.agent);
        return json(res, 200, { token, agent: profileOf(body.agent) });
      } else if (req.method === 'GET' && url.pathname === '/mock/log') {
        return json(res, 200, log);
      } else if (req.method === 'GET' && url.pathname === '/mock/caller-audio') {
        return json(res, 200, callerPage ? await callerPage.evaluate(() => window.caller.audio()) : null);
      } else if (req.method === 'POST' && url.pathname.startsWith('/mock/')) {
        const id = url.searchParams.get('agent') || 'alice';
        const a = agents.get(id);
        if (!a) return json(res, 404, { error: 'no such agent' });
        const op = url.pathname.slice(6);
        if (op === 'ring') { if (a.state === 'away') a.state = 'available'; ring(id); }
        else if (op === 'caller-hangup') endCall(id, 'caller');
        else if (op === 'cancel') {
          if (a.call && a.call.phase === 'ringing') {
            sendTo(id, { type: 'ring_cancelled', call_id: a.call.id, reason: url.searchParams.get('reason') || 'caller_left' });
            a.call = null;
            setState(id, 'available');
          }
        }
        else if (op === 'drop') for (const s of a.sockets) s.terminate();
        else if (op === 'expire') {
          for (const [t, who] of tokens) if (who === id) tokens.delete(t);
          for (const s of a.sockets) s.close(4001, 'token expired');
        } else if (op === 'reset') { log.length = 0; a.call = null; a.state = 'away'; clearTimeout(a.ringTimer); clearTimeout(a.wrapTimer); }
        else return json(res, 404, { error: 'unknown op' });
        return json(res, 200, { ok: true, state: a.state });
      } else {
        res.writeHead(404).end();
      }
    } catch (err) {
      if (!res.headersSent) json(res, 500, { error: String(err.message || err) });
    }
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname !== '/agent/ws') { socket.destroy(); return; }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const id = tokens.get(url.searchParams.get('token') || '');
      if (!id) { ws.close(4001, 'token expired'); return; }
      const a = agents.get(id);
      // As the real server: a newer login of the same agent replaces the older session.
      for (const old of a.sockets) { old.send(JSON.stringify({ type: 'replaced' })); old.close(4002, 'logged in elsewhere'); }
      a.sockets.add(ws);
      const hello = { type: 'hello', agent: profileOf(id), state: a.state, since_ms: Date.now() - a.since };
      if (a.call && a.call.phase === 'ringing') hello.call = ringMessage(a.call);
      if (a.state === 'wrap_up') hello.wrap_up_ms = Math.max(0, wrapUpMs - (Date.now() - a.since));
      ws.send(JSON.stringify(hello));
      ws.send(JSON.stringify(queuesMessage()));
      broadcastAgents();
      ws.on('message', (data) => {
        let msg;
        try { msg = JSON.parse(String(data)); } catch { return; }
        onMessage(id, msg).catch((err) => ws.send(JSON.stringify({ type: 'error', message: String(err.message || err) })));
      });
      ws.on('close', () => {
        a.sockets.delete(ws);
        // As the real server: a ringing agent whose socket drops is made away and the call withdrawn
        // (even when a reload's new socket got there first).
        if (a.state === 'ringing' && a.call) {
          sendTo(id, { type: 'ring_cancelled', call_id: a.call.id, reason: 'agent_left' });
          a.call = null;
          setState(id, 'away');
        }
        if (a.sockets.size === 0 && a.state === 'available') setState(id, 'away');
      });
    });
  });

  await new Promise((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base, log,
    async close() {
      for (const a of agents.values()) { clearTimeout(a.ringTimer); clearTimeout(a.wrapTimer); for (const s of a.sockets) s.terminate(); }
      if (browser) await browser.close().catch(() => {});
      const closed = new Promise((r) => server.close(r));
      server.closeAllConnections();
      await closed;
      if (profile) await rm(profile, { recursive: true, force: true });
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
  const mock = await startMock({ port: arg('port', 8099), toneHz: arg('tone-hz', 440), ringDelayMs: arg('ring-delay-ms', 500), wrapUpMs: arg('wrap-up-ms', 10000) });
  console.log(`mock agent server on ${mock.base}/agent (alice/pw, bob/pw2)`);
  const stop = async () => { await mock.close(); process.exit(0); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
