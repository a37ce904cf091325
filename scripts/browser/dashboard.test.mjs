#!/usr/bin/env node
// The supervisors' dashboard in headless Chromium against a running switchboard: sign in (a wrong
// password is refused first), see the live board, the seeded day's charts with the right bars,
// hover values, then a call placed by the calling script appear and leave without a reload.
// Exit 0 on success, 1 with the failed step, a screenshot and the page's console.
//
//   node dashboard.test.mjs --base http://127.0.0.1:8080 --supervisor mia --password pw \
//        --queue billing --date 2026-11-22 --expect-offered 3,1,2,1,1 \
//        [--ready-file PATH] [--restart-file PATH] [--screenshot PATH] [--artifacts DIR] [--chromium PATH]
//
// --expect-offered: the offered count of each bar of --date, in time order (all queues).
// --ready-file is written once the board is live, so the script can place the call; the test then
// waits for the queue to show 1 waiting, takes --screenshot, and waits for 0 waiting and
// today's abandoned to reach 1 (the caller hangs up unanswered). With --restart-file it then
// writes that file and expects "reconnecting", a new sign-in and live again (the script restarts
// the server).
import { chromium } from 'playwright-core';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

function parseArgs(argv) {
  const o = { base: null, supervisor: null, password: null, queue: 'billing', date: null, expectOffered: null,
    readyFile: null, screenshot: null, artifacts: null, chromium: '/usr/bin/chromium', callTimeoutMs: 90000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--base': o.base = v().replace(/\/+$/, ''); break;
      case '--supervisor': o.supervisor = v(); break;
      case '--password': o.password = v(); break;
      case '--queue': o.queue = v(); break;
      case '--date': o.date = v(); break;
      case '--expect-offered': o.expectOffered = v().split(',').map(Number); break;
      case '--ready-file': o.readyFile = v(); break;
      case '--screenshot': o.screenshot = v(); break;
      case '--artifacts': o.artifacts = v(); break;
      case '--chromium': o.chromium = v(); break;
      case '--restart-file': o.restartFile = v(); break;
      case '--call-timeout-ms': o.callTimeoutMs = Number(v()); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  for (const k of ['base', 'supervisor', 'password', 'date', 'expectOffered']) if (!o[k]) throw new Error(`--${k} is required`);
  return o;
}

const o = parseArgs(process.argv.slice(2));
const sel = (t) => `[data-test="${t}"]`;
let step = 'launch';
const consoleLines = [];
const browser = await chromium.launch({ executablePath: o.chromium, args: FLAGS });
const page = await browser.newPage({ viewport: { width: 1360, height: 1500 } });
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

async function fail(why) {
  const dir = o.artifacts || await mkdtemp(path.join(tmpdir(), 'dashboard-test-'));
  const shot = path.join(dir, 'dashboard-failure.png');
  await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
  console.log(`FAIL at "${step}": ${why}`);
  console.log(`screenshot: ${shot}`);
  for (const l of consoleLines.slice(-30)) console.log(`  console ${l}`);
  await browser.close();
  process.exit(1);
}
async function check(name, fn) {
  step = name;
  try { await fn(); console.log(`ok   ${name}`); } catch (e) { await fail(e.message.split('\n')[0]); }
}
const queueCard = `${sel('queue')}[data-queue="${o.queue}"]`;

await check('the page asks for a sign-in', async () => {
  await page.goto(`${o.base}/dashboard`);
  await page.waitForSelector(`${sel('login')}:not([hidden])`, { timeout: 10000 });
});
await check('a wrong password is refused', async () => {
  await page.fill(sel('login-id'), o.supervisor);
  await page.fill(sel('login-password'), `${o.password}-wrong`);
  await page.click(sel('login-submit'));
  await page.waitForFunction((s) => document.querySelector(s)?.textContent.length > 0, sel('login-error'), { timeout: 10000 });
  if (!(await page.isVisible(sel('login')))) throw new Error('the board opened with a wrong password');
});
await check('signs in and the board goes live', async () => {
  await page.fill(sel('login-password'), o.password);
  await page.click(sel('login-submit'));
  await page.waitForSelector(`${sel('conn')}[data-state="live"]`, { timeout: 15000 });
  await page.waitForSelector(`${queueCard}[data-waiting="0"]`, { timeout: 10000 });
  // Marks this document: a reload would lose it.
  await page.evaluate(() => { window.__sameDocument = true; });
});
await check(`the charts of ${o.date} have one bar per busy interval`, async () => {
  await page.fill(sel('report-date'), o.date);
  await page.dispatchEvent(sel('report-date'), 'change');
  const want = o.expectOffered.join(',');
  await page.waitForFunction(([s, w]) => [...document.querySelectorAll(s)].map((b) => b.dataset.offered).join(',') === w,
    [`${sel('chart-volume')} ${sel('bar')}`, want], { timeout: 15000 })
    .catch(async () => {
      const got = await page.$$eval(`${sel('chart-volume')} ${sel('bar')}`, (bs) => bs.map((b) => b.dataset.offered).join(','));
      throw new Error(`bars offered [${got}], expected [${want}]`);
    });
  const rects = await page.$$eval(`${sel('chart-volume')} ${sel('bar')} rect`, (rs) => rs.length);
  if (rects < o.expectOffered.length) throw new Error(`only ${rects} bar segments`);
  if (!(await page.$(`${sel('chart-sl')} ${sel('sl-target')}`))) throw new Error('no service-level target line');
  const slPoints = await page.$$eval(`${sel('chart-sl')} ${sel('sl-point')}`, (p) => p.length);
  if (slPoints !== o.expectOffered.length) throw new Error(`${slPoints} service-level points, expected ${o.expectOffered.length}`);
  const waitPaths = await page.$$eval(`${sel('chart-wait')} path`, (p) => p.length);
  if (waitPaths < 2) throw new Error(`${waitPaths} wait lines, expected average and longest`);
});
await check('hovering a bar shows its values', async () => {
  const bar = await page.$(`${sel('chart-volume')} ${sel('bar')}`);
  const box = await bar.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector(`${sel('tooltip')}:not([hidden])`, { timeout: 5000 });
  const text = await page.textContent(sel('tooltip'));
  if (!text.includes(`offered ${o.expectOffered[0]}`)) throw new Error(`tooltip says ${JSON.stringify(text)}`);
  await page.mouse.move(5, 5);
});
await check('a queued call appears without a reload', async () => {
  if (o.readyFile) await writeFile(o.readyFile, 'ready\n');
  console.log('READY');
  await page.waitForSelector(`${queueCard}[data-waiting="1"]`, { timeout: o.callTimeoutMs });
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error('the page was reloaded');
  // The longest wait ticks in the page between pushes.
  const a = await page.textContent(`${queueCard} ${sel('queue-longest')}`);
  await page.waitForFunction(([s, a0]) => document.querySelector(s)?.textContent !== a0,
    [`${queueCard} ${sel('queue-longest')}`, a], { timeout: 5000 });
  if (o.screenshot) await page.screenshot({ path: o.screenshot, fullPage: true });
});
await check('the caller hangs up: 0 waiting and one abandoned today', async () => {
  await page.waitForSelector(`${queueCard}[data-waiting="0"]`, { timeout: o.callTimeoutMs });
  await page.waitForFunction((s) => Number(document.querySelector(s)?.textContent) >= 1,
    `${sel('kpi-abandoned')} .v`, { timeout: 20000 });
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error('the page was reloaded');
});
if (o.restartFile) {
  // Sessions live in the server's memory: after a restart the page reconnects, finds its login
  // gone, and asks for it again instead of retrying for ever.
  await check('a restarted server: "reconnecting", then a new sign-in, then live again', async () => {
    await writeFile(o.restartFile, 'restart\n');
    console.log('RESTART');
    await page.waitForSelector(`${sel('conn')}[data-state="reconnecting"]`, { timeout: 20000 });
    await page.waitForSelector(`${sel('login')}:not([hidden])`, { timeout: 40000 });
    const msg = await page.textContent(sel('login-error'));
    if (!/expired/.test(msg)) throw new Error(`the sign-in says ${JSON.stringify(msg)}`);
    await page.fill(sel('login-id'), o.supervisor);
    await page.fill(sel('login-password'), o.password);
    await page.click(sel('login-submit'));
    await page.waitForSelector(`${sel('conn')}[data-state="live"]`, { timeout: 15000 });
    await page.waitForSelector(`${queueCard}[data-waiting="0"]`, { timeout: 10000 });
    if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error('the page was reloaded');
  });
}
await browser.close();
console.log('dashboard.test: all passed');
