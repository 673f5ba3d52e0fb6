// Debian's Chromium driven by playwright-core, for the browser tests: one browser per test file, a fresh
// profile (Playwright gives every launch its own temporary user-data-dir), nothing reaching the network
// beyond 127.0.0.1, and screenshots kept in test-artifacts/screenshots/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  chromium,
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  type Locator,
  type Page,
} from 'playwright-core';
import { recordSecret } from '../support/logs.js';
import { ARTIFACTS_DIR } from '../support/paths.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.join(ARTIFACTS_DIR, 'screenshots');
/** Generous: the suite shares 2 cores with other work. */
export const UI_TIMEOUT_MS = 30_000;

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export async function newContext(browser: Browser, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, ...options });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
  return context;
}

/** A full-page screenshot at test-artifacts/screenshots/<name>.png; `mask` hides secrets shown on the page. */
export async function screenshot(page: Page, name: string, mask: Locator[] = []): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true, mask });
}

/** The id of the element that has the keyboard focus. */
export async function focusedId(page: Page): Promise<string> {
  return (await page.evaluate('document.activeElement ? document.activeElement.id : ""')) as string;
}

/** Records the session cookie `context` holds for `base`, if any, for the secret scan. */
export async function recordSessionCookie(context: BrowserContext, base: string): Promise<void> {
  const session = (await context.cookies(base)).find((k) => k.name === 'keyfarm_session');
  if (session) recordSecret(session.value);
}

/** Registers `email` with `password` on the register page and waits for the account page. */
export async function registerInBrowser(page: Page, base: string, email: string, password: string): Promise<void> {
  await page.goto(`${base}/register`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.fill('#confirm_password', password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(`${base}/account`);
}
