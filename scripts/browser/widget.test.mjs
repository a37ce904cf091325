#!/usr/bin/env node
// The click-to-call widget in headless Chromium: a page on another origin embeds /widget.js,
// opens the panel, submits the callback form and must see its place in line; a page from an
// origin the server does not allow must be refused. Exit 0 on success, 1 naming the failed step.
//
//   node widget.test.mjs --page http://127.0.0.1:PORT/ --expect position|refused [--chromium PATH]
import { chromium } from 'playwright-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

function fail(step, detail) {
  console.error(`FAIL ${step}: ${detail}`);
  process.exit(1);
}

const browser = await chromium.launch({ executablePath: args.chromium || '/usr/bin/chromium', args: FLAGS });
try {
  const page = await browser.newPage();
  await page.goto(args.page);
  const open = page.locator('[data-switchboard-widget] >> #open');
  await open.waitFor({ timeout: 10000 }).catch(() => fail('load', 'the widget button did not appear'));
  await open.click();
  await page.locator('[data-switchboard-widget] >> #tab-cb').click();
  await page.locator('[data-switchboard-widget] >> #number').fill('+55 11 91234-5678');
  await page.locator('[data-switchboard-widget] >> #note').fill('Where is my order 42?');
  await page.locator('[data-switchboard-widget] >> #cb-submit').click();
  const status = page.locator('[data-switchboard-widget] >> #cb-status');
  await page.waitForFunction(() => {
    const host = document.querySelector('[data-switchboard-widget]');
    const el = host && host.shadowRoot.getElementById('cb-status');
    return el && el.textContent && el.textContent !== 'Sending…';
  }, null, { timeout: 10000 }).catch(() => fail('submit', 'no answer shown'));
  const text = await status.textContent();
  if (args.expect === 'position') {
    if (!/number 1 in line/.test(text)) fail('position', `expected "number 1 in line", saw: ${text}`);
  } else if (/in line/.test(text) || !/cannot reach/.test(text)) {
    // The server's 403 carries no Access-Control-Allow-Origin, so the page cannot read it.
    fail('refused', `a disallowed origin was not refused: ${text}`);
  }
  // The host page's styles must not have been touched by the widget's.
  const leaked = await page.evaluate(() => getComputedStyle(document.querySelector('#host-button')).backgroundColor);
  if (leaked !== 'rgb(255, 0, 0)') fail('isolation', `the host page's button changed colour: ${leaked}`);
  console.log(`ok: ${text}`);
} finally {
  await browser.close();
}
