#!/usr/bin/env node
// End-to-end check of the agent console in headless Chromium against a running switchboard:
// sign in, go Available, wait for a call (placed by the calling script), check the screen pop,
// answer, prove the caller's audio reaches the page and the agent's audio leaves it, hang up,
// check wrap-up. Exit 0 on success, 1 with a message naming the failed step.
//
//   node agent-console.test.mjs --base http://127.0.0.1:8080 --agent alice --password pw \
//        --audio /abs/tone.wav --expect-call [options]
//
// Options:
//   --expect-call | --expect-no-call   the agent must (default) / must not be rung
//   --no-call-ms N         how long --expect-no-call watches (10000)
//   --ring-timeout-ms N    how long to wait for the ring (60000)
//   --expect-caller S      the screen pop's caller must contain S
//   --expect-account S     the screen pop's account name must be S (else: whatever the ring carried)
//   --no-account           the caller did not identify (a web visitor): the ring carries no account
//   --tone-hz F            the caller's tone: its frequency must dominate what the page hears
//   --rms-threshold X      RMS (0..1) the caller's audio must exceed (0.01 ≈ -40 dBFS)
//   --audio-timeout-ms N   how long to wait for the caller's audio (10000)
//   --hangup agent|caller  who ends the call (agent: click Hang up; caller: wait for call_ended)
//   --talk-ms N            stay on the call this long before hanging up (0)
//   --no-wrap-up-done      leave the agent in wrap-up instead of clicking Wrap-up done
//   --processed-audio      open the microphone as agents do (echo cancellation, noise suppression,
//                          AGC); by default the test opens it raw, because noise suppression
//                          attenuates a steady test tone by ~18 dB and the far end would hear little
//   --ready-file PATH      written once the agent is Available (for the script that places the call)
//   --artifacts DIR        where a failure screenshot goes (a temp dir by default)
//   --chromium PATH        the browser (/usr/bin/chromium)
import { chromium } from 'playwright-core';
import { mkdtemp, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'];

function parseArgs(argv) {
  const o = {
    base: null, agent: null, password: null, audio: null, expectCall: true, noCallMs: 10000,
    ringTimeoutMs: 60000, expectCaller: null, expectAccount: null, toneHz: null, rmsThreshold: 0.01,
    audioTimeoutMs: 10000, hangup: 'agent', talkMs: 0, wrapUpDone: true, rawAudio: true, readyFile: null,
    artifacts: null, chromium: '/usr/bin/chromium',
  };
  const value = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => { const n = Number(value(i)); if (!Number.isFinite(n)) throw new Error(`${a} needs a number`); i++; return n; };
    const str = () => { const s = value(i); i++; return s; };
    switch (a) {
      case '--base': o.base = str().replace(/\/+$/, ''); break;
      case '--agent': o.agent = str(); break;
      case '--password': o.password = str(); break;
      case '--audio': o.audio = str(); break;
      case '--expect-call': o.expectCall = true; break;
      case '--expect-no-call': o.expectCall = false; break;
      case '--no-call-ms': o.noCallMs = num(); break;
      case '--ring-timeout-ms': o.ringTimeoutMs = num(); break;
      case '--expect-caller': o.expectCaller = str(); break;
      case '--expect-account': o.expectAccount = str(); break;
      case '--no-account': o.noAccount = true; break;
      case '--tone-hz': o.toneHz = num(); break;
      case '--rms-threshold': o.rmsThreshold = num(); break;
      case '--audio-timeout-ms': o.audioTimeoutMs = num(); break;
      case '--hangup': o.hangup = str(); break;
      case '--talk-ms': o.talkMs = num(); break;
      case '--no-wrap-up-done': o.wrapUpDone = false; break;
      case '--processed-audio': o.rawAudio = false; break;
      case '--ready-file': o.readyFile = str(); break;
      case '--artifacts': o.artifacts = str(); break;
      case '--chromium': o.chromium = str(); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  for (const k of ['base', 'agent', 'password', 'audio']) if (!o[k]) throw new Error(`--${k} is required`);
  if (!path.isAbsolute(o.audio)) throw new Error('--audio must be an absolute path to a PCM WAV');
  if (!['agent', 'caller'].includes(o.hangup)) throw new Error('--hangup is agent or caller');
  return o;
}

class StepError extends Error {}
let currentStep = 'start';
const t0 = Date.now();
function step(name) {
  currentStep = name;
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${name}`);
}
function check(cond, message) { if (!cond) throw new StepError(message); }

async function waitFor(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const seen = await page.evaluate(() => ({ state: window.__agent?.state, phase: window.__agent?.call?.phase, connected: window.__agent?.connected })).catch(() => ({}));
    throw new StepError(`timed out after ${timeout} ms waiting for ${what} (page: ${JSON.stringify(seen)})`);
  }
}

// Listens to the remote stream through WebAudio, as a person's ear would: the RMS of what arrives,
// and which frequency dominates it.
async function measureRemoteAudio(page, { timeoutMs, threshold }) {
  return page.evaluate(async ({ timeoutMs, threshold }) => {
    const stream = window.__agent.remoteStream;
    if (!stream || stream.getAudioTracks().length === 0) return { error: 'no remote audio track' };
    const ctx = new AudioContext();
    await ctx.resume();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const time = new Float32Array(analyser.fftSize);
    const freq = new Float32Array(analyser.frequencyBinCount);
    let peak = 0; let run = 0; let best = 0; const peaks = new Map();
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
      await new Promise((r) => setTimeout(r, 50));
      analyser.getFloatTimeDomainData(time);
      let sum = 0;
      for (const v of time) sum += v * v;
      const rms = Math.sqrt(sum / time.length);
      peak = Math.max(peak, rms);
      if (rms > threshold) {
        run += 1;
        analyser.getFloatFrequencyData(freq);
        let bin = 1;
        for (let i = 2; i < freq.length; i++) if (freq[i] > freq[bin]) bin = i;
        const hz = Math.round((bin * ctx.sampleRate) / analyser.fftSize);
        peaks.set(hz, (peaks.get(hz) || 0) + 1);
      } else run = 0;
      best = Math.max(best, run);
      if (run >= 10) break; // half a second of sound in a row
    }
    await ctx.close();
    const dominantHz = [...peaks].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
    return { peak, loudRun: best, dominantHz, sampleRate: ctx.sampleRate };
  }, { timeoutMs, threshold });
}

async function rtpStats(page) {
  return page.evaluate(async () => {
    const pc = window.__agent.pc;
    if (!pc) return null;
    const out = { packetsSent: 0, packetsReceived: 0, codec: null };
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') {
        out.packetsSent += s.packetsSent || 0;
        const c = s.codecId && stats.get(s.codecId);
        if (c) out.codec = `${c.mimeType}/${c.clockRate}`;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.packetsReceived += s.packetsReceived || 0;
    });
    return out;
  });
}

async function run(o) {
  await access(o.audio).catch(() => { throw new StepError(`--audio ${o.audio} does not exist`); });
  const host = new URL(o.base).hostname;
  const loopback = host === 'localhost' || host.startsWith('127.') || host === '[::1]';
  const args = [...FLAGS, `--use-file-for-fake-audio-capture=${o.audio}`];
  // getUserMedia needs a secure context; plain http is one only on loopback.
  if (!loopback && o.base.startsWith('http:')) args.push(`--unsafely-treat-insecure-origin-as-secure=${o.base}`);
  const profile = await mkdtemp(path.join(tmpdir(), 'agent-console-'));
  const consoleLines = [];
  let context = null;
  let page = null;
  try {
    step('launch Chromium');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: o.chromium, headless: false, args, viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] || await context.newPage();
    page.on('console', (m) => consoleLines.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

    step(`open ${o.base}/agent and sign in as ${o.agent}`);
    const query = new URLSearchParams();
    if (o.rawAudio) query.set('audio', 'raw');
    if (loopback) query.set('ice', 'loopback'); // the server's ICE checks stay on 127.0.0.1 / ::1
    await page.goto(`${o.base}/agent${query.size ? `?${query}` : ''}`, { waitUntil: 'load' });
    await page.fill('[data-test="login-agent"]', o.agent);
    await page.fill('[data-test="login-password"]', o.password);
    await page.click('[data-test="login-submit"]');
    await page.waitForFunction(() => window.__agent.connected || document.querySelector('[data-test="login-error"]').textContent,
      null, { timeout: 15000, polling: 100 }).catch(() => {});
    const loginError = await page.textContent('[data-test="login-error"]');
    check(!loginError, `sign-in failed: ${loginError}`);
    await waitFor(page, () => window.__agent.connected, null, 15000, 'the socket\'s hello');

    step('go Available');
    await waitFor(page, () => !document.querySelector('[data-test="state-available"]').disabled, null, 15000, 'the Available button');
    if (await page.evaluate(() => window.__agent.state) !== 'available') await page.click('[data-test="state-available"]');
    await waitFor(page, () => window.__agent.state === 'available', null, 10000, 'state available');
    console.log('READY');
    if (o.readyFile) await writeFile(o.readyFile, `${o.agent}\n`);

    if (!o.expectCall) {
      step(`stay Available for ${o.noCallMs} ms; no call may ring`);
      const rang = await page.waitForFunction(() => window.__agent.call !== null, null, { timeout: o.noCallMs, polling: 100 })
        .then(() => true, () => false);
      if (rang) {
        const c = await page.evaluate(() => ({ caller: window.__agent.call?.caller, queue: window.__agent.call?.queue }));
        throw new StepError(`a call rang this agent although it must not: ${JSON.stringify(c)}`);
      }
      console.log(`PASS: ${o.agent} was not offered a call in ${o.noCallMs} ms`);
      return;
    }

    step('wait for the ring');
    await waitFor(page, () => window.__agent.call && window.__agent.call.phase === 'ringing', null, o.ringTimeoutMs, 'a ring');
    check(await page.isVisible('[data-test="ring-banner"]'), 'the ringing banner is not visible');
    const ringAudible = await page.evaluate(() => !document.querySelector('[data-test="ring-audio"]').paused);
    check(ringAudible, 'the ring tone is not playing');

    step('check the screen pop');
    const call = await page.evaluate(() => JSON.parse(JSON.stringify(window.__agent.call)));
    const shownCaller = (await page.textContent('[data-test="call-caller"]')).trim();
    check(call.caller && shownCaller.includes(call.caller), `the screen pop shows caller "${shownCaller}", the ring said "${call.caller}"`);
    if (o.expectCaller) check(shownCaller.includes(o.expectCaller), `the screen pop shows caller "${shownCaller}", expected "${o.expectCaller}"`);
    const shownAccount = (await page.textContent('[data-test="account-name"]')).trim();
    if (o.noAccount) {
      check(!call.account?.name, `an anonymous caller's ring carried account "${call.account?.name}"`);
    } else {
      const wantAccount = o.expectAccount ?? call.account?.name;
      check(wantAccount, 'the ring carried no account (pass --expect-account to say which one is expected, or --no-account)');
      check(shownAccount === wantAccount, `the screen pop shows account "${shownAccount}", expected "${wantAccount}"`);
    }
    const popText = await page.textContent('[data-test="call-card"]');
    check(!/\bpin\b\s*[:=]?\s*\d/i.test(popText), 'the screen pop shows something PIN-like');
    console.log(`screen pop: caller ${shownCaller}, account ${shownAccount}, queue ${call.queue}, path ${call.ivrPath.join(' > ')}`);

    step('answer');
    await page.click('[data-test="answer"]');
    await waitFor(page, () => window.__agent.call && window.__agent.call.phase === 'connected', null, 20000, 'the server\'s "connected"');
    await waitFor(page, () => window.__agent.state === 'on_call', null, 5000, 'state on_call');
    await waitFor(page, () => window.__agent.pc && window.__agent.pc.connectionState === 'connected' && window.__agent.remoteStream,
      null, 15000, 'the WebRTC connection (ICE + DTLS)');

    step('listen for the caller\'s audio');
    const heard = await measureRemoteAudio(page, { timeoutMs: o.audioTimeoutMs, threshold: o.rmsThreshold });
    check(!heard.error, heard.error);
    console.log(`caller audio: peak RMS ${heard.peak.toFixed(4)}, longest loud run ${heard.loudRun * 50} ms, dominant ${heard.dominantHz} Hz`);
    check(heard.loudRun >= 10, `no audio from the caller: peak RMS ${heard.peak.toFixed(4)} never stayed above ${o.rmsThreshold} for 500 ms`);
    if (o.toneHz) {
      const bin = heard.sampleRate / 4096;
      check(heard.dominantHz !== null && Math.abs(heard.dominantHz - o.toneHz) <= Math.max(2 * bin, o.toneHz * 0.03),
        `the caller's audio peaks at ${heard.dominantHz} Hz, expected the ${o.toneHz} Hz tone`);
    }

    step('check the agent\'s audio is being sent');
    const s1 = await rtpStats(page);
    await page.waitForTimeout(1000);
    const s2 = await rtpStats(page);
    check(s1 && s2, 'no peer connection to read stats from');
    console.log(`rtp: codec ${s2.codec}, packets sent ${s1.packetsSent} → ${s2.packetsSent}, received ${s2.packetsReceived}`);
    check(s2.packetsSent > s1.packetsSent, `outbound-rtp packetsSent is not growing (${s1.packetsSent} → ${s2.packetsSent})`);
    if (o.talkMs > 0) await page.waitForTimeout(o.talkMs);

    if (o.hangup === 'agent') {
      step('hang up');
      await page.click('[data-test="hangup"]');
    } else {
      step('wait for the caller to hang up');
    }
    await waitFor(page, () => window.__agent.state === 'wrap_up', null, o.hangup === 'agent' ? 10000 : o.ringTimeoutMs, 'state wrap_up');
    const endedBy = await page.evaluate(() => window.__agent.call && window.__agent.call.endedBy);
    check(await page.isVisible('[data-test="wrap-up-done"]'), 'the Wrap-up done button is not visible');
    check(await page.evaluate(() => window.__agent.pc === null), 'the peer connection is still open after the call ended');
    console.log(`wrap-up: call ended by ${endedBy}; ${(await page.textContent('[data-test="wrapup-countdown"]')).trim() || 'no countdown'}`);

    if (o.wrapUpDone) {
      step('wrap-up done');
      await page.click('[data-test="wrap-up-done"]');
      await waitFor(page, () => window.__agent.state === 'available' || window.__agent.state === 'ringing', null, 10000, 'state available after wrap-up');
    }
    console.log(`PASS: ${o.agent} answered ${call.caller} (${call.account?.name ?? 'no account'}), heard the caller, sent audio, wrapped up`);
  } catch (err) {
    if (page) {
      const dir = o.artifacts || await mkdtemp(path.join(tmpdir(), 'agent-console-fail-'));
      const shot = path.join(dir, `agent-console-${o.agent}-failure.png`);
      await page.screenshot({ path: shot, fullPage: true }).then(() => console.error(`screenshot: ${shot}`), () => {});
    }
    if (consoleLines.length) console.error(`page console (last 20):\n  ${consoleLines.slice(-20).join('\n  ')}`);
    throw err;
  } finally {
    if (context) await context.close().catch(() => {});
    await rm(profile, { recursive: true, force: true }).catch(() => {});
  }
}

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error(`usage error: ${err.message}\n(see the header of ${path.basename(process.argv[1])})`);
  process.exit(1);
}
try {
  await run(options);
  process.exit(0);
} catch (err) {
  console.error(`FAIL at "${currentStep}": ${err instanceof StepError ? err.message : err.stack || err}`);
  process.exit(1);
}
