// A real SMTP server (the smtp-server package) in its own process, for the suite: listens on 127.0.0.1 on a
// free port, requires AUTH PLAIN/LOGIN with the user and password given in the environment, and writes each
// message it accepts, raw, as a file in the folder given (mode 0600). Prints {"port": N} once listening.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';

const dir = process.argv[2];
const user = process.env.SMTP_SINK_USER;
const pass = process.env.SMTP_SINK_PASS;
if (!dir || !user || !pass)
  throw new Error('usage: SMTP_SINK_USER=.. SMTP_SINK_PASS=.. node smtp-sink-process.js <dir>');
mkdirSync(dir, { recursive: true, mode: 0o700 });
let seq = 0;

const server = new SMTPServer({
  secure: false,
  disabledCommands: ['STARTTLS'],
  allowInsecureAuth: true,
  authMethods: ['PLAIN', 'LOGIN'],
  logger: false,
  size: 1024 * 1024,
  onAuth(auth, _session, callback) {
    if (auth.username === user && auth.password === pass) callback(null, { user: auth.username });
    else callback(new Error('535 authentication failed'));
  },
  onData(stream, session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const name = `${String(++seq).padStart(6, '0')}-${randomBytes(4).toString('hex')}.eml`;
      const envelope = `X-Sink-Rcpt: ${session.envelope.rcptTo.map((r) => r.address).join(', ')}\r\n`;
      writeFileSync(path.join(dir, name), Buffer.concat([Buffer.from(envelope), ...chunks]), { mode: 0o600 });
      callback();
    });
  },
});

server.listen(0, '127.0.0.1', () => {
  const address = server.server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
