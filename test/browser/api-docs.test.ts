// /docs in a real browser: the API reference renders from the OpenAPI document with our own stylesheet,
// under the pages' strict CSP with no violation, and fetches nothing beyond the farm (it works offline).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { launchBrowser, newContext, screenshot } from './browser.js';

describe('the API reference page in the browser', () => {
  let farm: TestFarm;
  let browser: Browser;

  before(async () => {
    [farm, browser] = await Promise.all([startTestFarm('browser-api-docs', {}, { api: true }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await farm?.stop();
  });

  it('renders every operation with its styles, with no CSP violation and no request leaving the farm', async () => {
    const context = await newContext(browser);
    const farmOrigin = new URL(farm.url).origin;
    const elsewhere: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (new URL(url).origin === farmOrigin) return route.continue();
      elsewhere.push(url);
      return route.abort();
    });
    // Recorded from the first byte of every document (an init script runs before the page's own).
    await context.addInitScript(`
      globalThis.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => globalThis.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
    `);
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });

    const doc = (await (await fetch(`${farm.url}/api/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const res = await page.goto(`${farm.url}/docs`);
    assert.equal(res?.status(), 200);
    await page.waitForLoadState('load');

    await page.getByRole('heading', { level: 1, name: /Keyfarm API/ }).waitFor();
    const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const headings = (await page.locator('section.operation h3').allTextContents()).map((t) =>
      t.replace(/\s+/g, ' ').trim(),
    );
    assert.deepEqual([...headings].sort(), [...operations].sort());
    // A table of the register route's body, read from its schema.
    const register = page.locator('#post-api-auth-register');
    await assert.doesNotReject(
      register
        .locator('table.fields code', { hasText: /^email$/ })
        .first()
        .waitFor(),
    );

    // The stylesheet applied: it was allowed by style-src 'self'.
    const collapse = await page.evaluate('getComputedStyle(document.querySelector("table.fields")).borderCollapse');
    assert.equal(collapse, 'collapse');
    // A link in the table of contents leads to its operation.
    await page.locator('nav a[href="#post-api-nostr"]').click();
    assert.equal(new URL(page.url()).hash, '#post-api-nostr');

    const violations = (await page.evaluate('globalThis.cspViolations')) as string[];
    assert.deepEqual(violations, [], 'CSP violations');
    assert.deepEqual(
      consoleErrors.filter((t) => /Content Security Policy/i.test(t)),
      [],
      'CSP console errors',
    );
    assert.deepEqual(elsewhere, [], 'requests beyond the farm');
    // The recorder works: an inline style, which the CSP refuses, is reported.
    await page.evaluate('document.body.setAttribute("style", "color: red")');
    await page.waitForFunction('globalThis.cspViolations.length > 0');
    await screenshot(page, 'api-docs');
    await context.close();
  });
});
