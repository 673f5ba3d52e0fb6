// A farm (api only) on its own port that mails through a real SMTP server process, and a browser, for the
// browser tests that follow mailed links.
import type { Browser } from 'playwright-core';
import { freePort } from '../support/env.js';
import { startTestFarm, type TestFarm } from '../support/farm.js';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink.js';
import { launchBrowser } from './browser.js';

/** The SMTP sink, the farm mailing to it (its links on PUBLIC_URL, its own address) with `env` added, and Chromium. */
export async function startMailingFarm(
  name: string,
  env: Record<string, string> = {},
): Promise<{ sink: SmtpSink; farm: TestFarm; browser: Browser }> {
  const sink = await startSmtpSink();
  try {
    const port = await freePort();
    const [farm, browser] = await Promise.all([
      startTestFarm(
        name,
        { PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, SMTP_URL: sink.url, ...env },
        { api: true },
      ),
      launchBrowser(),
    ]);
    return { sink, farm, browser };
  } catch (err) {
    await sink.stop();
    throw err;
  }
}
