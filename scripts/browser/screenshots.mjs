// Screenshots of the console in each state, against the mock server, for a person to look at:
//   node screenshots.mjs [outdir]
import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startMock } from './mock-server.mjs';

const out = path.resolve(process.argv[2] || 'screenshots');
await mkdir(out, { recursive: true });
const mock = await startMock({ ringDelayMs: -1, wrapUpMs: 30000 });
const profile = await mkdtemp(path.join(tmpdir(), 'agent-shots-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: false, viewport: { width: 1280, height: 860 },
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const shot = (name) => page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
  await page.goto(`${mock.base}/agent`);
  await page.fill('[data-test="login-agent"]', 'alice');
  await page.fill('[data-test="login-password"]', 'wrong');
  await page.click('[data-test="login-submit"]');
  await page.waitForFunction(() => document.querySelector('[data-test="login-error"]').textContent);
  await shot('1-login-error');
  await page.fill('[data-test="login-password"]', 'pw');
  await page.click('[data-test="login-submit"]');
  await page.waitForFunction(() => window.__agent.connected);
  await shot('2-away');
  await page.click('[data-test="state-available"]');
  await page.waitForFunction(() => window.__agent.state === 'available');
  await fetch(`${mock.base}/mock/ring`, { method: 'POST' });
  await page.waitForFunction(() => window.__agent.call?.phase === 'ringing');
  await shot('3-ringing');
  await page.click('[data-test="answer"]');
  await page.waitForFunction(() => window.__agent.call?.phase === 'connected');
  await page.click('[data-test="keypad-toggle"]');
  await page.click('[data-test="dtmf-5"]');
  await page.click('[data-test="mute"]');
  await page.waitForTimeout(1200);
  await shot('4-on-call');
  await page.click('[data-test="hangup"]');
  await page.waitForFunction(() => window.__agent.state === 'wrap_up');
  await page.waitForTimeout(300);
  await shot('5-wrap-up');
  await fetch(`${mock.base}/mock/drop`, { method: 'POST' });
  await page.waitForFunction(() => !window.__agent.connected);
  await shot('6-reconnecting');
  console.log(`screenshots in ${out}`);
} finally {
  await ctx.close();
  await rm(profile, { recursive: true, force: true });
  await mock.close();
}
