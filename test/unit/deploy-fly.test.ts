// deploy/fly: a fly.toml per role, each built from deploy/Dockerfile, running that role with real
// settings, stopped gracefully, checked on real routes; the api public with migrations as its release step.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import {
  DEPLOY_DIR,
  ROLES,
  cliCommands,
  deployFiles,
  durationSeconds,
  looksLikeRealSecret,
  probeRoutes,
  readDeploy,
  unknownSettings,
} from './deploy-helpers.js';

describe('deploy/fly', () => {
  it('has one fly.toml per role', () => {
    assert.deepEqual(deployFiles('fly', '.toml'), ROLES.map((r) => `${r}.fly.toml`).sort());
  });

  for (const role of ROLES) {
    describe(role, () => {
      const file = `fly/${role}.fly.toml`;
      const fly = parseToml(readDeploy(file)) as any;
      const env: Record<string, string> = fly.env;
      const processNames = Object.keys(fly.processes);

      it('is its own app, built from deploy/Dockerfile, running the role', () => {
        assert.equal(fly.app, `keyfarm-${role}`);
        assert.equal(
          path.resolve(path.dirname(path.join(DEPLOY_DIR, file)), fly.build.dockerfile),
          path.join(DEPLOY_DIR, 'Dockerfile'),
        );
        assert.deepEqual(Object.values(fly.processes), [role]);
        assert.ok(cliCommands().has(role));
      });

      it('stops with SIGTERM and time to drain', () => {
        assert.equal(fly.kill_signal, 'SIGTERM');
        assert.ok(durationSeconds(fly.kill_timeout) >= 30, `kill_timeout ${fly.kill_timeout}`);
      });

      it('sets real settings and no secret', () => {
        assert.deepEqual(unknownSettings(Object.keys(env)), []);
        for (const name of ['DATABASE_URL', 'REDIS_URL', 'ADMIN_PASSWORD'])
          assert.equal(env[name], undefined, `${name} is a fly secret`);
        for (const [k, v] of Object.entries(env))
          assert.ok(!/PASSWORD|SECRET|TOKEN/.test(k) || !looksLikeRealSecret(v), k);
        assert.equal(env.HOST, '0.0.0.0');
        assert.equal(
          env.GOOGLE_APPLICATION_CREDENTIALS,
          fly.files[0].guest_path,
          'the KMS credentials come from a fly secret',
        );
      });

      it('checks the machine on a real route of the port it serves', () => {
        const alive = fly.checks.alive;
        assert.equal(alive.type, 'http');
        assert.equal(alive.path, '/health');
        assert.ok(probeRoutes().has(alive.path));
        const port = role === 'workers' ? Number(env.METRICS_PORT) : Number(env.PORT);
        assert.equal(alive.port, port);
        assert.deepEqual(alive.processes, processNames);
        assert.equal(fly.metrics.port, port);
        assert.ok(probeRoutes().has(fly.metrics.path));
      });

      if (role === 'api') {
        it('serves HTTPS to machines that are ready, after migrating', () => {
          const http = fly.http_service;
          assert.equal(http.internal_port, Number(env.PORT));
          assert.equal(http.force_https, true);
          assert.deepEqual(http.processes, processNames);
          assert.ok(http.checks.some((c: any) => c.path === '/healthz/ready') && probeRoutes().has('/healthz/ready'));
          assert.equal(fly.deploy.release_command, 'migrate');
        });
      } else {
        it('is not exposed to the internet', () => {
          assert.equal(fly.http_service, undefined);
          assert.equal(fly.services, undefined);
        });
      }
    });
  }
});
