// Outgoing mail: through the SMTP server in SMTP_URL, or, with none set, into an outbox folder under
// DATA_DIR (one .eml file per message, readable by its owner only). Sending happens after the request is
// answered, so how long a server takes never shows in a response; a message's text (which carries a
// link with its token) never goes to a log, and neither does the address it goes to.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';

export interface MailMessage {
  to: string;
  subject: string;
  /** Plain text only: no HTML a mail client could render from user input. */
  text: string;
  /** For the logs and metrics: what this message is (never its text). */
  kind: 'verify' | 'reset' | 'email-changed' | 'team-invite';
}

export interface Mailer {
  /** Where mail goes: `smtp` or the outbox folder's absolute path (the pages tell users of the outbox). */
  readonly outbox?: string;
  /** Sends in the background; a failure is logged (kind and error only) and does not reach the caller. */
  deliver(message: MailMessage): void;
  /** Waits for the messages still being sent, up to `timeoutMs`, then closes the transport. */
  close(timeoutMs?: number): Promise<void>;
}

const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };
/** A message being sent is dropped past this many in flight (a stuck server must not pile up memory). */
const MAX_IN_FLIGHT = 1000;

export function outboxDir(config: Config): string {
  return path.resolve(config.DATA_DIR, 'outbox');
}

export function createMailer(config: Config, logger: Logger): Mailer {
  const outbox = config.SMTP_URL === undefined ? outboxDir(config) : undefined;
  const transport: Transporter = outbox
    ? nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
    : nodemailer.createTransport({ url: config.SMTP_URL, ...SMTP_TIMEOUTS });
  const inFlight = new Set<Promise<void>>();

  async function writeToOutbox(dir: string, raw: Buffer, kind: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const file = path.join(
      dir,
      `${new Date().toISOString().replace(/[:.]/g, '-')}-${kind}-${randomBytes(4).toString('hex')}.eml`,
    );
    await writeFile(file, raw, { mode: 0o600, flag: 'wx' });
  }

  async function send(m: MailMessage): Promise<void> {
    const info = await transport.sendMail({ from: config.SMTP_FROM, to: m.to, subject: m.subject, text: m.text });
    if (outbox) await writeToOutbox(outbox, info.message as Buffer, m.kind);
    logger.info({ mail: m.kind, via: outbox ? 'outbox' : 'smtp' }, 'mail sent');
  }

  return {
    outbox,
    deliver(message) {
      if (inFlight.size >= MAX_IN_FLIGHT) {
        logger.warn({ mail: message.kind }, 'mail dropped: too many messages waiting for the mail server');
        return;
      }
      const sending = send(message)
        .catch((err: Error & { code?: string; responseCode?: number }) => {
          logger.warn({ mail: message.kind, smtpError: err.code, responseCode: err.responseCode }, 'mail not sent');
        })
        .finally(() => inFlight.delete(sending));
      inFlight.add(sending);
    },
    async close(timeoutMs = 5_000) {
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([Promise.allSettled([...inFlight]), waited]);
      clearTimeout(timer);
      transport.close();
    },
  };
}
