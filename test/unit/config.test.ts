import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadEnv, parseConfig } from '../../shared/config.js';
import { redisTargetOf } from '../../shared/redis.js';
import { KEYFARM_CLI } from '../support/paths.js';

describe('settings', () => {
  it('fills the documented defaults', () => {
    const cfg = parseConfig({});
    assert.equal(cfg.PORT, 3000);
    assert.equal(cfg.HOST, '127.0.0.1');
    assert.equal(cfg.SHARD_COUNT, 2);
    assert.equal(cfg.QUEUE_LIMIT, 4096);
    assert.deepEqual(cfg.BUNKER_RELAYS, []);
    assert.equal(cfg.MASTER_KEY_PATH, path.join('.data', 'master.key'));
    assert.equal(cfg.PUBLIC_URL, 'http://127.0.0.1:3000');
    assert.equal(cfg.DATABASE_URL, undefined);
  });

  it('admission waits at most half of the RPC timeout by default, and never as long as the timeout', () => {
    assert.equal(parseConfig({}).ADMISSION_MAX_WAIT_MS, 5000);
    assert.equal(parseConfig({ RPC_TIMEOUT_MS: '3000' }).ADMISSION_MAX_WAIT_MS, 1500);
    assert.equal(parseConfig({ ADMISSION_MAX_WAIT_MS: '0' }).ADMISSION_MAX_WAIT_MS, 0);
    assert.equal(parseConfig({ ADMISSION_MAX_WAIT_MS: '8000' }).ADMISSION_MAX_WAIT_MS, 8000);
    for (const value of ['10000', '20000']) {
      assert.throws(
        () => parseConfig({ ADMISSION_MAX_WAIT_MS: value }),
        (err: unknown) => err instanceof ConfigError && err.setting === 'ADMISSION_MAX_WAIT_MS',
      );
    }
    assert.throws(
      () => parseConfig({ ADMISSION_MAX_WAIT_MS: '-1' }),
      (err: unknown) => err instanceof ConfigError && err.setting === 'ADMISSION_MAX_WAIT_MS',
    );
  });

  it('converts and lists values', () => {
    const cfg = parseConfig({
      PORT: '8080',
      SHARD_COUNT: '32',
      BUNKER_RELAYS: 'wss://a.example, ws://127.0.0.1:7777',
      PUBLIC_URL: 'https://kf.example/',
    });
    assert.equal(cfg.PORT, 8080);
    assert.equal(cfg.SHARD_COUNT, 32);
    assert.deepEqual(cfg.BUNKER_RELAYS, ['wss://a.example', 'ws://127.0.0.1:7777']);
    assert.equal(cfg.PUBLIC_URL, 'https://kf.example');
  });

  it('reads the email settings: outbox by default, a sender from PUBLIC_URL, and refuses a bad SMTP_URL naming it but not its password', () => {
    const cfg = parseConfig({ PUBLIC_URL: 'https://kf.example' });
    assert.equal(cfg.SMTP_URL, undefined);
    assert.equal(cfg.SMTP_FROM, 'Keyfarm <keyfarm@kf.example>');
    assert.equal(cfg.EMAIL_VERIFICATION_TTL_HOURS, 24);
    assert.equal(cfg.EMAIL_LIMIT_PER_ADDRESS, '5/1h');
    assert.equal(cfg.RATE_LIMIT_EMAIL, '10/1h');
    assert.equal(
      parseConfig({ SMTP_URL: 'smtps://u:p@mail.example:465', SMTP_FROM: 'Ops <ops@kf.example>' }).SMTP_FROM,
      'Ops <ops@kf.example>',
    );
    for (const [setting, value] of [
      ['SMTP_URL', 'https://user:hunter2-secret@mail.example'],
      ['SMTP_URL', 'smtp://user:hunter2-secret@'],
      ['SMTP_FROM', 'no address here'],
      ['SMTP_FROM', 'a@b.example\r\nBcc: victim@example.com'],
      ['EMAIL_LIMIT_PER_ADDRESS', 'often'],
      ['EMAIL_VERIFICATION_TTL_HOURS', '0'],
    ] as const) {
      assert.throws(
        () => parseConfig({ [setting]: value }),
        (err: Error) => {
          assert.ok(err instanceof ConfigError && err.setting === setting, `${setting}=${value}: ${err.message}`);
          assert.doesNotMatch(err.message, /hunter2/);
          return true;
        },
      );
    }
  });

  it('has safe user-relay defaults, lists allowed hosts, and refuses a bad one naming the setting', () => {
    const cfg = parseConfig({});
    assert.equal(cfg.USER_RELAYS_PER_AUTHORIZATION, 3);
    assert.equal(cfg.USER_RELAYS_PER_USER, 8);
    assert.equal(cfg.USER_RELAYS_TOTAL, 64);
    assert.equal(cfg.MAX_AUTHORIZATIONS_PER_USER, 50);
    assert.equal(cfg.USER_RELAYS_ALLOW_WS, false);
    assert.equal(cfg.USER_RELAYS_ALLOW_PRIVATE, false);
    assert.deepEqual(cfg.USER_RELAYS_ALLOWLIST, []);
    assert.deepEqual(
      parseConfig({ USER_RELAYS_ALLOWLIST: 'Relay.Example.com., [2606:4700::1]' }).USER_RELAYS_ALLOWLIST,
      ['relay.example.com', '2606:4700::1'],
    );
    for (const [env, setting] of [
      [{ USER_RELAYS_ALLOWLIST: 'wss://relay.example.com' }, 'USER_RELAYS_ALLOWLIST'],
      [{ USER_RELAYS_TOTAL: '-1' }, 'USER_RELAYS_TOTAL'],
      [{ MAX_AUTHORIZATIONS_PER_USER: '0' }, 'MAX_AUTHORIZATIONS_PER_USER'],
      [{ USER_RELAYS_ALLOW_PRIVATE: 'yes please' }, 'USER_RELAYS_ALLOW_PRIVATE'],
    ] as const) {
      assert.throws(
        () => parseConfig(env),
        (err: unknown) => err instanceof ConfigError && err.setting === setting,
        setting,
      );
    }
  });

  const bad: [Record<string, string>, string][] = [
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ SHARD_COUNT: '0' }, 'SHARD_COUNT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ BUNKER_RELAYS: 'https://not-a-relay' }, 'BUNKER_RELAYS'],
    [{ GCP_KMS_KEY: 'my-key' }, 'GCP_KMS_KEY'],
    [{ ADMIN_PASSWORD: 'short' }, 'ADMIN_PASSWORD'],
    [{ ALLOWED_ORIGINS: 'example.com' }, 'ALLOWED_ORIGINS'],
    [{ ADMIN_QUEUES_READ_ONLY: 'maybe' }, 'ADMIN_QUEUES_READ_ONLY'],
    // Not silently rounded to an integer.
    [{ SHARD_COUNT: '1.5' }, 'SHARD_COUNT'],
    [{ QUEUE_LIMIT: '4e3' }, 'QUEUE_LIMIT'],
    [{ METRICS_PORT: '9090.0' }, 'METRICS_PORT'],
  ];
  for (const [env, setting] of bad) {
    it(`refuses a bad ${setting}, naming it`, () => {
      assert.throws(
        () => parseConfig(env),
        (err: unknown) => err instanceof ConfigError && err.setting === setting && err.message.includes(setting),
      );
    });
  }

  it('takes a METRICS_TOKEN of 32+ token characters, and refuses others without echoing them', () => {
    const good = 'a3f1'.repeat(16);
    assert.equal(parseConfig({ METRICS_TOKEN: good }).METRICS_TOKEN, good);
    assert.equal(parseConfig({}).METRICS_TOKEN, undefined, 'unset by default: /api/metrics stays open');
    for (const value of [
      'too-short-token',
      `${'x'.repeat(40)} with spaces`,
      `${'y'.repeat(40)}"quote`,
      'z'.repeat(513),
    ]) {
      assert.throws(
        () => parseConfig({ METRICS_TOKEN: value }),
        (err: unknown) => err instanceof ConfigError && err.setting === 'METRICS_TOKEN' && !err.message.includes(value),
      );
    }
  });

  it('reads .env under the environment (the environment wins)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kf-env-'));
    const file = path.join(dir, '.env');
    writeFileSync(file, 'PORT=4000\nSHARD_COUNT=8\n');
    const merged = loadEnv({ PORT: '5000' }, file);
    assert.equal(merged.PORT, '5000');
    assert.equal(merged.SHARD_COUNT, '8');
  });

  it('stops the start with one line naming the setting', () => {
    const res = spawnSync(process.execPath, [KEYFARM_CLI, 'api'], {
      env: { PATH: process.env.PATH, SHARD_COUNT: 'many' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(res.status, 1);
    const lines = res.stderr.trim().split('\n');
    assert.equal(lines.length, 1, res.stderr);
    assert.match(lines[0]!, /SHARD_COUNT/);
    assert.equal(res.stdout, '');
  });

  it('refuses an unknown command with usage', () => {
    const res = spawnSync(process.execPath, [KEYFARM_CLI, 'fly'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /unknown command "fly"/);
  });

  it('names a Redis Cluster by REDIS_CLUSTER_NODES, which wins over REDIS_URL; a bad node list stops the start', () => {
    const cfg = parseConfig({
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b.internal:7001',
      REDIS_PASSWORD: 'cluster-pass',
    });
    assert.deepEqual(redisTargetOf(cfg, cfg.REDIS_URL!), {
      clusterNodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-b.internal', port: 7001 },
      ],
      password: 'cluster-pass',
    });
    assert.equal(
      redisTargetOf(parseConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }), 'redis://127.0.0.1:6379'),
      'redis://127.0.0.1:6379',
    );
    for (const bad of ['10.0.0.1', '10.0.0.1:7000,', 'redis://10.0.0.1:7000', '10.0.0.1:port']) {
      assert.throws(
        () => parseConfig({ REDIS_CLUSTER_NODES: bad }),
        (err: Error) => err instanceof ConfigError && err.setting === 'REDIS_CLUSTER_NODES',
        bad,
      );
    }
  });
});
