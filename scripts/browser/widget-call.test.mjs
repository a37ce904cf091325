#!/usr/bin/env node
// A visitor's call from the click-to-call widget in headless Chromium: a page on another origin
// embeds /widget.js; the visitor clicks Call (fake microphone playing --audio), hears the flow,
// presses 1 on the widget's keypad (RFC 4733 through the page's RTCDTMFSender), waits in the
// queue, and talks to an agent (a second browser, run by the calling script): the agent's tone
// must dominate what the page hears, and the page must be sending. Then the visitor hangs up.
// Exit 0 on success, 1 naming the failed step.
//
//   node widget-call.test.mjs --page URL --audio /abs/caller.wav --tone-hz 660 [--chromium PATH]
//        [--screenshot FILE]
import { chromium } from 'playwright-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
  `--use-file-for-fake-audio-capture=${args.audio}`];
const TONE = Number(args['tone-hz'] || 660);

let page = null;
async function fail(step, detail) {
  console.error(`FAIL ${step}: ${detail}`);
  if (page && args.screenshot) await page.screenshot({ path: args.screenshot }).catch(() => {});
  process.exit(1);
}

// The widget lives in a shadow root; its state marker and text are read from there.
async function widgetState() {
  return page.evaluate(() => {
    const root = document.querySelector('[data-switchboard-widget]')?.shadowRoot;
    return {
      state: root?.getElementById('host-state')?.getAttribute('data-state'),
      text: root?.getElementById('call-state')?.textContent,
      status: root?.getElementById('call-status')?.textContent,
    };
  });
}

async function waitState(state, timeoutMs) {
  const until = Date.now() + timeoutMs;
  let seen = null;
  while (Date.now() < until) {
    seen = await widgetState();
    if (seen.state === state) return seen;
    if (seen.state === 'ended' && state !== 'ended') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await fail(state, `the widget did not reach "${state}" (saw ${JSON.stringify(seen)})`);
}

const browser = await chromium.launch({ executablePath: args.chromium || '/usr/bin/chromium', args: FLAGS });
try {
  page = await browser.newPage();
  // Test instrumentation: keep the page's peer connections reachable for measuring (the widget
  // itself keeps them private).
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = function (...a) {
      const pc = new Native(...a);
      window.__pcs.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  });
  await page.goto(args.page);
  const w = (sel) => page.locator(`[data-switchboard-widget] >> ${sel}`);
  await w('#open').waitFor({ timeout: 10000 }).catch(() => fail('load', 'the widget button did not appear'));
  await w('#open').click();
  await w('#dial').click();
  const ivr = await waitState('in_ivr', 30000);
  console.log(`in the flow: ${ivr.text}`);

  // Let the menu prompt start, then press 1 on the on-screen keypad.
  await new Promise((r) => setTimeout(r, 1500));
  await w('button[aria-label="Key 1"]').click();
  const queued = await waitState('queued', 15000);
  console.log(`queued: ${queued.text}`);
  const talking = await waitState('connected', 60000);
  console.log(`connected: ${talking.text}`);

  const heard = await page.evaluate(async () => {
    const pc = window.__pcs[window.__pcs.length - 1];
    const track = pc?.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
    if (!track) return { error: 'no remote audio track' };
    const ctx = new AudioContext();
    await ctx.resume();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const time = new Float32Array(analyser.fftSize);
    const freq = new Float32Array(analyser.frequencyBinCount);
    const peaks = new Map();
    let run = 0;
    const start = performance.now();
    while (performance.now() - start < 10000 && run < 10) {
      await new Promise((r) => setTimeout(r, 50));
      analyser.getFloatTimeDomainData(time);
      let sum = 0;
      for (const v of time) sum += v * v;
      if (Math.sqrt(sum / time.length) > 0.01) {
        run += 1;
        analyser.getFloatFrequencyData(freq);
        let bin = 1;
        for (let i = 2; i < freq.length; i++) if (freq[i] > freq[bin]) bin = i;
        const hz = Math.round((bin * ctx.sampleRate) / analyser.fftSize);
        peaks.set(hz, (peaks.get(hz) || 0) + 1);
      } else run = 0;
    }
    const bin = ctx.sampleRate / analyser.fftSize;
    await ctx.close();
    let sent = 0; let codec = null;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') {
        sent += s.packetsSent || 0;
        const c = s.codecId && stats.get(s.codecId);
        if (c) codec = c.mimeType;
      }
    });
    const dominantHz = [...peaks].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
    return { run, dominantHz, bin, sent, codec };
  });
  if (heard.error) await fail('audio', heard.error);
  console.log(`heard: ${JSON.stringify(heard)}`);
  if (heard.run < 10) await fail('audio', `no half second of the agent's audio reached the page (${JSON.stringify(heard)})`);
  if (heard.dominantHz === null || Math.abs(heard.dominantHz - TONE) > Math.max(2 * heard.bin, TONE * 0.03)) {
    await fail('audio', `the page hears ${heard.dominantHz} Hz, expected the agent's ${TONE} Hz tone`);
  }
  if (heard.sent < 50) await fail('audio', `the page sent only ${heard.sent} packets`);
  if (!/PCMU/i.test(heard.codec || '')) await fail('codec', `negotiated ${heard.codec}, expected PCMU`);

  // Stay on the line while the agent's page checks the visitor's tone, then hang up.
  await new Promise((r) => setTimeout(r, Number(args['talk-ms'] || 3000)));
  await w('#hangup').click();
  const ended = await waitState('ended', 5000);
  if (!/ended/i.test(ended.text || '')) await fail('hangup', `after hanging up the widget says: ${ended.text}`);
  if (args.screenshot) await page.screenshot({ path: args.screenshot });
  console.log('ok: called from the widget, walked the menu with its keypad, talked to the agent both ways');
} finally {
  await browser.close();
}
