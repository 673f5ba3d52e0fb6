// The mail a farm under test sends, read as a person would: from its outbox folder (SMTP_URL unset) or from
// the SMTP server the suite runs (smtp-sink.ts). Messages are parsed from their raw RFC 5322 text; every
// link and token found is recorded for the secret scan.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { call } from './client.js';
import { recordSecret } from './logs.js';

export interface Mail {
  file: string;
  to: string;
  from: string;
  subject: string;
  text: string;
}

function decodeQuotedPrintable(body: string): string {
  const bytes = body
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/** A single-part text message: its headers (unfolded) and its body, decoded. */
export function parseMail(raw: string, file = ''): Mail {
  const normalized = raw.replace(/\r\n/g, '\n');
  const split = normalized.indexOf('\n\n');
  const head = normalized.slice(0, split).replace(/\n[ \t]+/g, ' ');
  const body = normalized.slice(split + 2);
  const headers = new Map<string, string>();
  for (const line of head.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  const text =
    encoding === 'quoted-printable'
      ? decodeQuotedPrintable(body)
      : encoding === 'base64'
        ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
        : body;
  return {
    file,
    to: headers.get('to') ?? '',
    from: headers.get('from') ?? '',
    subject: headers.get('subject') ?? '',
    text,
  };
}

/** Every message in a folder of .eml files, oldest first. */
export function readMailDir(dir: string): Mail[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((f) => parseMail(readFileSync(path.join(dir, f), 'utf8'), path.join(dir, f)));
}

export function outboxOf(dataDir: string): string {
  return path.resolve(dataDir, 'outbox');
}

/** The messages to `to` (case aside) in `dir`. */
export function mailTo(dir: string, to: string): Mail[] {
  return readMailDir(dir).filter((m) => m.to.toLowerCase().includes(to.toLowerCase()));
}

/** Waits until `dir` holds at least `count` messages to `to`; returns them all. */
export async function waitForMail(dir: string, to: string, count = 1, timeoutMs = 10_000): Promise<Mail[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = mailTo(dir, to);
    if (found.length >= count) return found;
    if (Date.now() > deadline)
      throw new Error(`no mail #${count} to ${to} in ${dir} after ${timeoutMs} ms (found ${found.length})`);
    await sleep(50);
  }
}

/** The link to `route` (e.g. /verify-email) in a message, and its token; both recorded as secrets. */
export function linkIn(mail: Mail, route: string): { link: string; token: string } {
  const match = new RegExp(`https?://[^\\s]+${route}\\?token=([A-Za-z0-9_-]+)`).exec(mail.text);
  if (!match) throw new Error(`no ${route} link in the mail "${mail.subject}"`);
  return { link: recordSecret(match[0]), token: recordSecret(match[1]!) };
}

/** Confirms `email` as its owner would: the newest confirmation link in the farm's outbox, used through the API. */
export async function confirmEmail(base: string, dataDir: string, email: string): Promise<void> {
  const mails = (await waitForMail(outboxOf(dataDir), email)).filter((m) => m.text.includes('/verify-email?token='));
  const { token } = linkIn(mails.at(-1)!, '/verify-email');
  const res = await call(base, 'POST', '/api/auth/verify-email', { token });
  if (res.status !== 200) throw new Error(`verify-email failed: ${res.status} ${JSON.stringify(res.body)}`);
}
