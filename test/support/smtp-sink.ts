// Starts and stops the suite's SMTP server process (smtp-sink-process.ts) and reads what it received.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordSecret } from './logs.js';
import { testDataDir } from './env.js';

export interface SmtpSink {
  /** SMTP_URL for a farm: smtp://user:password@127.0.0.1:port */
  url: string;
  /** The folder of received messages (mailTo / waitForMail read it). */
  dir: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'smtp-sink-process.js');

export async function startSmtpSink(): Promise<SmtpSink> {
  const dir = path.join(testDataDir(), 'smtp-received');
  const user = 'keyfarm-mailer';
  const pass = recordSecret(`smtp-${randomBytes(12).toString('hex')}`);
  const child = spawn(process.execPath, [SCRIPT, dir], {
    env: { ...process.env, SMTP_SINK_USER: user, SMTP_SINK_PASS: pass },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`the SMTP server exited (${code}) before listening`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
    });
  });
  return {
    url: `smtp://${user}:${pass}@127.0.0.1:${port}`,
    dir,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
