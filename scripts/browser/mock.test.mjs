// The console's own behaviour in headless Chromium against mock-server.mjs (no Rust server
// needed): the end-to-end script passes and audio flows both ways; secrets stay off the screen;
// reloads, dropped sockets and expired tokens leave no ghost state; every control speaks the
// protocol. Run: npm test (in scripts/browser).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startMock } from './mock-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

async function writeToneWav(file, hz, seconds, rate = 48000) {
  const n = Math.round(seconds * rate);
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write('WAVE', 8);
  buf.write('fmt ', 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 2, 28); buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34);
  buf.write('data', 36); buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(16000 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  await writeFile(file, buf);
}

function runScript(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(HERE, 'agent-console.test.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('close', (code) => resolve({ code, out }));
  });
}

const post = (base, op, query = '') => fetch(`${base}/mock/${op}${query}`, { method: 'POST' }).then((r) => r.json());

describe('the end-to-end script against the mock', () => {
  let mock; let dir; let wav;
  before(async () => {
    mock = await startMock({ toneHz: 440, ringDelayMs: 300, wrapUpMs: 5000 });
    dir = await mkdtemp(path.join(tmpdir(), 'console-e2e-'));
    wav = path.join(dir, 'agent-1000hz.wav');
    await writeToneWav(wav, 1000, 20);
  });
  after(async () => { await mock.close(); await rm(dir, { recursive: true, force: true }); });

  test('answers, hears the caller\'s tone, sends the agent\'s audio, wraps up', async () => {
    const r = await runScript(['--base', mock.base, '--agent', 'alice', '--password', 'pw', '--audio', wav,
      '--expect-call', '--tone-hz', '440', '--talk-ms', '1500', '--artifacts', dir]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /dominant 4[34]\d Hz/);
    assert.match(r.out, /codec audio\/PCMU\/8000/);
    const heard = await (await fetch(`${mock.base}/mock/caller-audio`)).json();
    assert.ok(heard.packetsReceived > 50, `caller received ${heard.packetsReceived} packets`);
    assert.ok(heard.peak > 0.1, `the caller heard the agent at RMS ${heard.peak}`);
    const log = await (await fetch(`${mock.base}/mock/log`)).json();
    assert.deepEqual(log.map((m) => m.type), ['state', 'answer', 'hangup', 'wrap_up_done']);
    const { candidates } = log[1];
    assert.ok(candidates.length > 0 && candidates.every((a) => a.startsWith('127.') || a === '::1'), `offer candidates ${candidates}`);
  });

  test('fails with a clear message when the caller\'s tone is not the expected one', async () => {
    await post(mock.base, 'reset');
    const r = await runScript(['--base', mock.base, '--agent', 'alice', '--password', 'pw', '--audio', wav,
      '--tone-hz', '1000', '--artifacts', dir]);
    assert.equal(r.code, 1);
    assert.match(r.out, /FAIL at "listen for the caller's audio": .*expected the 1000 Hz tone/);
  });

  test('fails with a clear message on a wrong password', async () => {
    const r = await runScript(['--base', mock.base, '--agent', 'alice', '--password', 'nope', '--audio', wav, '--artifacts', dir]);
    assert.equal(r.code, 1);
    assert.match(r.out, /sign-in failed: Wrong agent ID or password/);
  });

  test('--expect-no-call fails when the agent is rung', async () => {
    await post(mock.base, 'reset');
    const r = await runScript(['--base', mock.base, '--agent', 'alice', '--password', 'pw', '--audio', wav,
      '--expect-no-call', '--no-call-ms', '3000', '--artifacts', dir]);
    assert.equal(r.code, 1);
    assert.match(r.out, /a call rang this agent although it must not/);
  });
});

describe('the console page', () => {
  let mock; let ctx; let profile;
  before(async () => {
    mock = await startMock({ toneHz: 440, ringDelayMs: -1, wrapUpMs: 60000 });
    profile = await mkdtemp(path.join(tmpdir(), 'console-ui-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: false,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream', '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
    });
  });
  after(async () => { await ctx.close(); await rm(profile, { recursive: true, force: true }); await mock.close(); });

  async function signedIn(agent = 'alice', password = 'pw') {
    await post(mock.base, 'reset', `?agent=${agent}`);
    const page = await ctx.newPage();
    await page.goto(`${mock.base}/agent`);
    await page.fill('[data-test="login-agent"]', agent);
    await page.fill('[data-test="login-password"]', password);
    await page.click('[data-test="login-submit"]');
    await page.waitForFunction(() => window.__agent.connected && window.__agent.state === 'away');
    return page;
  }
  async function ringing(page) {
    await page.click('[data-test="state-available"]');
    await page.waitForFunction(() => window.__agent.state === 'available');
    await post(mock.base, 'ring');
    await page.waitForFunction(() => window.__agent.call?.phase === 'ringing');
  }
  async function onCall(page) {
    await ringing(page);
    await page.click('[data-test="answer"]');
    await page.waitForFunction(() => window.__agent.call?.phase === 'connected');
  }
  const sentByPage = async () => (await (await fetch(`${mock.base}/mock/log`)).json());

  test('the ring is visible, audible and announced, and the screen pop shows no PIN or CVV', async () => {
    const page = await signedIn();
    await ringing(page);
    assert.ok(await page.isVisible('[data-test="ring-banner"]'));
    assert.equal(await page.evaluate(() => document.querySelector('[data-test="ring-audio"]').paused), false);
    assert.match(await page.textContent('[data-test="ring-announce"]'), /Incoming call from \+5511987654321/);
    assert.equal((await page.textContent('[data-test="account-name"]')).trim(), 'Maria Oliveira');
    assert.equal((await page.textContent('[data-test="account-tier"]')).trim(), 'gold');
    assert.match(await page.textContent('[data-test="account-extra"]'), /São Paulo/);
    assert.deepEqual(await page.$$eval('[data-test="call-ivr-path"] li', (l) => l.map((x) => x.textContent)),
      ['welcome', 'main-menu', 'ask-account', 'ask-pin', 'billing-queue']);
    assert.match(await page.textContent('[data-test="call-digits"]'), /Ask account\s*1001/);
    assert.match(await page.textContent('[data-test="call-vars"]'), /R\$ 1\.250,00/);
    const everything = await page.evaluate(() => document.body.innerText + JSON.stringify(window.__agent.call));
    assert.ok(!everything.includes('7395'), 'the PIN reached the page');
    assert.ok(!everything.includes('918'), 'the card CVV reached the page');
    await page.close();
  });

  test('decline and a cancelled ring stop the ringer and clear the banner', async () => {
    const page = await signedIn();
    await ringing(page);
    await page.click('[data-test="decline"]');
    await page.waitForFunction(() => window.__agent.call === null);
    assert.equal(await page.isVisible('[data-test="ring-banner"]'), false);
    assert.ok((await sentByPage()).some((m) => m.type === 'decline' && m.call_id));
    await page.waitForFunction(() => window.__agent.state === 'available');
    await post(mock.base, 'ring');
    await page.waitForFunction(() => window.__agent.call?.phase === 'ringing');
    await post(mock.base, 'cancel', '?reason=ring_timeout');
    await page.waitForFunction(() => window.__agent.call === null);
    assert.equal(await page.evaluate(() => document.querySelector('[data-test="ring-audio"]').paused), true);
    assert.match(await page.textContent('[data-test="toasts"]'), /Not answered in time/);
    await page.close();
  });

  test('mute, hold, keypad and transfer send the protocol; mute silences the microphone', async () => {
    const page = await signedIn();
    await onCall(page);
    await page.click('[data-test="mute"]');
    assert.equal(await page.getAttribute('[data-test="mute"]', 'aria-pressed'), 'true');
    assert.equal(await page.evaluate(() => window.__agent.localStream.getAudioTracks()[0].enabled), false);
    await page.click('[data-test="mute"]');
    assert.equal(await page.evaluate(() => window.__agent.localStream.getAudioTracks()[0].enabled), true);
    await page.click('[data-test="hold"]');
    assert.equal(await page.getAttribute('[data-test="hold"]', 'aria-pressed'), 'true');
    await page.click('[data-test="hold"]');
    await page.click('[data-test="keypad-toggle"]');
    await page.click('[data-test="dtmf-5"]');
    await page.click('[data-test="dtmf-hash"]');
    await page.focus('[data-test="dtmf-1"]');
    await page.keyboard.press('7');
    assert.equal(await page.textContent('[data-test="dtmf-sent"]'), '5#7');
    await page.selectOption('[data-test="transfer-target"]', 'agent:bob');
    await page.click('[data-test="transfer"]');
    await page.waitForFunction(() => window.__agent.state === 'wrap_up');
    const log = (await sentByPage()).filter((m) => !['state', 'answer'].includes(m.type)).map(({ from, call_id, sdp, candidates, ...m }) => m);
    assert.deepEqual(log, [
      { type: 'mute', on: true }, { type: 'mute', on: false }, { type: 'hold', on: true }, { type: 'hold', on: false },
      { type: 'dtmf', digit: '5' }, { type: 'dtmf', digit: '#' }, { type: 'dtmf', digit: '7' }, { type: 'transfer', agent: 'bob' },
    ]);
    assert.equal(await page.evaluate(() => window.__agent.pc), null);
    await page.close();
  });

  test('transfer offers every queue and the other agents, not oneself', async () => {
    const page = await signedIn();
    await onCall(page);
    const options = await page.$$eval('[data-test="transfer-target"] option', (o) => o.map((x) => x.value).filter(Boolean));
    assert.deepEqual(options, ['queue:billing', 'queue:support', 'agent:bob']);
    await page.selectOption('[data-test="transfer-target"]', 'queue:support');
    await page.click('[data-test="transfer"]');
    await page.waitForFunction(() => window.__agent.state === 'wrap_up');
    assert.ok((await sentByPage()).some((m) => m.type === 'transfer' && m.queue === 'support'));
    await page.close();
  });

  test('a caller hang-up ends the call, shows who ended it and counts wrap-up down', async () => {
    const page = await signedIn();
    await onCall(page);
    await post(mock.base, 'caller-hangup');
    await page.waitForFunction(() => window.__agent.state === 'wrap_up');
    assert.equal(await page.textContent('[data-test="call-ended-by"]'), 'The caller hung up.');
    assert.match(await page.textContent('[data-test="wrapup-countdown"]'), /Wrap-up ends in 0[01]:[0-9]{2}/);
    assert.equal(await page.evaluate(() => window.__agent.pc), null);
    await page.click('[data-test="wrap-up-done"]');
    await page.waitForFunction(() => window.__agent.state === 'available');
    assert.equal(await page.isVisible('[data-test="call-card"]'), false);
    await page.close();
  });

  test('a reload while ringing keeps the sign-in and leaves no ghost call', async () => {
    const page = await signedIn();
    await ringing(page);
    await page.reload();
    // The server withdraws the call from an agent whose socket dropped; the page must follow it.
    await page.waitForFunction(() => window.__agent.connected && window.__agent.state === 'away', null, { timeout: 5000 });
    assert.equal(await page.isVisible('[data-test="login-form"]'), false);
    assert.equal(await page.evaluate(() => window.__agent.call), null);
    assert.equal(await page.isVisible('[data-test="ring-banner"]'), false);
    await page.close();
  });

  test('a reload during wrap-up still offers Wrap-up done', async () => {
    const page = await signedIn();
    await onCall(page);
    await page.click('[data-test="hangup"]');
    await page.waitForFunction(() => window.__agent.state === 'wrap_up');
    await page.reload();
    await page.waitForFunction(() => window.__agent.connected && window.__agent.state === 'wrap_up');
    assert.ok(await page.isVisible('[data-test="wrap-up-done"]'));
    await page.click('[data-test="wrap-up-done"]');
    await page.waitForFunction(() => window.__agent.state === 'available');
    await page.close();
  });

  test('a dropped socket reconnects and trusts the server\'s hello', async () => {
    const page = await signedIn();
    await page.click('[data-test="state-available"]');
    await page.waitForFunction(() => window.__agent.state === 'available');
    await post(mock.base, 'drop');
    await page.waitForFunction(() => !window.__agent.connected);
    assert.match(await page.textContent('[data-test="connection"]'), /reconnecting/);
    await page.waitForFunction(() => window.__agent.connected, null, { timeout: 5000 });
    assert.equal(await page.isVisible('[data-test="connection"]'), false);
    // The mock, like the server, makes an agent whose socket dropped unavailable.
    assert.equal(await page.evaluate(() => window.__agent.state), 'away');
    await page.close();
  });

  test('an expired token (close 4001) returns to the sign-in form and does not reconnect', async () => {
    const page = await signedIn();
    await post(mock.base, 'expire');
    await page.waitForSelector('[data-test="login-form"]', { state: 'visible' });
    assert.match(await page.textContent('[data-test="login-error"]'), /session has expired/);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.waitForTimeout(1500);
    assert.equal(await page.evaluate(() => window.__agent.connected), false);
    await page.close();
  });

  test('--expect-no-call passes when nobody rings the agent', async () => {
    await post(mock.base, 'reset');
    const wav = path.join(profile, 'tone.wav');
    await writeToneWav(wav, 1000, 2);
    const r = await runScript(['--base', mock.base, '--agent', 'alice', '--password', 'pw', '--audio', wav,
      '--expect-no-call', '--no-call-ms', '1500']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /PASS: alice was not offered a call in 1500 ms/);
  });

  test('a tab replaced by a newer sign-in (4002) stops instead of fighting, until asked', async () => {
    const first = await signedIn();
    const second = await signedIn();
    await first.waitForFunction(() => !window.__agent.connected);
    assert.match(await first.textContent('[data-test="connection"]'), /signed in on another tab/);
    await first.waitForTimeout(1500);
    assert.equal(await first.evaluate(() => window.__agent.connected), false);
    assert.equal(await second.evaluate(() => window.__agent.connected), true);
    await first.click('[data-test="reconnect"]');
    await first.waitForFunction(() => window.__agent.connected);
    await second.waitForFunction(() => !window.__agent.connected);
    await first.close();
    await second.close();
  });

  test('every control has a stable hook and an accessible name', async () => {
    const page = await signedIn();
    const unnamed = await page.$$eval('button, select, input', (els) => els
      .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id && document.querySelector(`label[for="${e.id}"]`))))
      .map((e) => e.outerHTML));
    assert.deepEqual(unnamed, []);
    const noHook = await page.$$eval('button, select, input', (els) => els.filter((e) => !e.dataset.test).map((e) => e.outerHTML));
    assert.deepEqual(noHook, []);
    await page.close();
  });
});
