// The logger censors secrets by configuration: any field named like a secret, wherever it sits in what
// is logged (top level, nested, in arrays, on errors, in child bindings), comes out as [redacted].
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { REDACTED, SECRET_FIELDS, createLogger, type Logger } from '../../shared/logger.js';

function capture(level = 'debug'): { logger: Logger; lines: () => Record<string, unknown>[]; text: () => string } {
  let text = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  const logger = createLogger({ level, role: 'test', destination });
  return {
    logger,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A value no ordinary log field would hold, distinct per field. */
const secretFor = (field: string) => `S3CRET-${field}-value`;

describe('log redaction', () => {
  it('covers the secret field names the service handles', () => {
    for (const name of [
      'password',
      'token',
      'nsec',
      'secret',
      'sk',
      'dek',
      'kek',
      'authorization',
      'cookie',
      'set-cookie',
      'refresh_token',
      'access_token',
      'code',
      'code_verifier',
      'client_secret',
      'bunker_url',
      'plaintext',
      'convKey',
    ]) {
      assert.ok((SECRET_FIELDS as readonly string[]).includes(name), name);
    }
  });

  it('writes [redacted] for every secret field at the top level, nested, in arrays and on errors', () => {
    const { logger, text, lines } = capture();
    for (const field of SECRET_FIELDS) {
      const value = secretFor(field);
      const err = Object.assign(new Error('failed'), { [field]: value });
      logger.info(
        {
          [field]: value,
          req: { headers: { [field]: value } },
          deep: { a: { b: { c: { [field]: value } } } },
          items: [{ id: 1, [field]: value }],
          err,
          traceId: 'trace-1',
        },
        'a line',
      );
    }
    const out = text();
    for (const field of SECRET_FIELDS)
      assert.ok(!out.includes(secretFor(field)), `${field} leaked: ${out.slice(0, 300)}`);
    const all = lines();
    assert.equal(all.length, SECRET_FIELDS.length);
    all.forEach((line, i) => {
      const field = SECRET_FIELDS[i]!;
      assert.equal(line[field], REDACTED, field);
      assert.equal((line.req as { headers: Record<string, unknown> }).headers[field], REDACTED);
      assert.equal((line.items as Record<string, unknown>[])[0]![field], REDACTED);
      assert.equal(line.traceId, 'trace-1', 'other fields are kept');
      const err = line.err as Record<string, unknown>;
      assert.equal(err.message, 'failed', 'an error keeps its message');
      assert.equal(err.type, 'Error');
      assert.equal(err[field], REDACTED);
    });
  });

  it('censors binary secrets and child logger bindings', () => {
    const { logger, text, lines } = capture();
    logger.info({ dek: Buffer.from('binary-data-key-0123456789') }, 'buffer');
    logger.child({ token: secretFor('binding'), member: 'w1' }).info('from a child');
    assert.ok(!text().includes('binary-data-key'));
    assert.ok(!text().includes(secretFor('binding')));
    const [first, second] = lines();
    assert.equal(first!.dek, REDACTED);
    assert.equal(second!.token, REDACTED);
    assert.equal(second!.member, 'w1');
  });

  it("never modifies the caller's objects", () => {
    const { logger } = capture();
    const body = { password: 'hunter2-hunter2', nested: { sk: 'ab'.repeat(32) } };
    const err = Object.assign(new Error('boom'), { token: 'tok-tok-tok-tok' });
    logger.warn({ body, err }, 'refused');
    assert.equal(body.password, 'hunter2-hunter2');
    assert.equal(body.nested.sk, 'ab'.repeat(32));
    assert.equal(err.token, 'tok-tok-tok-tok');
  });

  it('writes pino JSON lines with level, time, pid and role', () => {
    const { logger, lines } = capture('info');
    logger.debug('not written at info');
    logger.info({ traceId: 't-2' }, 'written');
    const all = lines();
    assert.equal(all.length, 1);
    assert.equal(all[0]!.msg, 'written');
    assert.equal(all[0]!.level, 30);
    assert.equal(all[0]!.role, 'test');
    assert.equal(all[0]!.pid, process.pid);
    assert.match(String(all[0]!.time), /^\d{4}-\d\d-\d\dT/);
  });
});
