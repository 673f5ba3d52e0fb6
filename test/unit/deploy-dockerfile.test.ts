// deploy/Dockerfile read instruction by instruction: multi-stage, a non-root runtime with a health check
// on a real route, `keyfarm <command>` as the entry, every runtime source copied, no secret baked in.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NODE_OPTIONS } from '../../bin/node-options.js';
import { PROJECT_ROOT } from '../support/paths.js';
import { cliCommands, probeRoutes, readDeploy, unknownSettings } from './deploy-helpers.js';

/** The Node LTS major the image ships (and .ci/run tests) on. */
const NODE_LTS_MAJOR = 24;

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Instructions with continuation lines joined and comments dropped; `stage` counts FROMs from 0. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    pending += line.endsWith('\\') ? `${line.slice(0, -1)} ` : line;
    if (line.endsWith('\\')) continue;
    const m = /^(\w+)\s+(.*)$/s.exec(pending);
    pending = '';
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

/** ["a", "b"] (exec form) or a b (shell form) → words. */
function words(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
}

const dockerfile = instructions(readDeploy('Dockerfile'));
const stages = dockerfile.filter((i) => i.op === 'FROM');
const lastStage = stages.length - 1;
const runtime = dockerfile.filter((i) => i.stage === lastStage);
const one = (op: string) => {
  const found = runtime.filter((i) => i.op === op);
  assert.equal(found.length, 1, `exactly one ${op} in the runtime stage`);
  return found[0]!;
};

describe('deploy/Dockerfile', () => {
  it('has named build stages and a runtime stage that copies their results', () => {
    assert.ok(stages.length >= 2, `multi-stage: ${stages.length} FROM`);
    const names = stages.slice(0, -1).map((s) => /\bAS\s+(\S+)$/i.exec(s.args)?.[1]);
    assert.ok(names.every(Boolean), 'every stage before the last is named');
    const copiedFrom = runtime
      .filter((i) => i.op === 'COPY')
      .map((i) => /--from=(\S+)/.exec(i.args)?.[1])
      .filter(Boolean);
    assert.ok(copiedFrom.includes('build'), 'dist/ comes from the build stage');
    assert.ok(copiedFrom.includes('deps'), 'node_modules come from the production-deps stage');
    const deps = dockerfile
      .filter((i) => i.stage === names.indexOf('deps') && i.op === 'RUN')
      .map((i) => i.args)
      .join(' ');
    assert.match(deps, /npm ci\b.*--omit=dev/, 'the runtime gets production dependencies only');
    const build = dockerfile
      .filter((i) => i.stage === names.indexOf('build') && i.op === 'RUN')
      .map((i) => i.args)
      .join(' ');
    assert.match(build, /npm ci\b/);
    assert.match(build, /tsc -p tsconfig\.json/);
    assert.match(build, /copy-assets\.mjs/);
  });

  it('builds every directory of runtime code, and copies only paths that exist', () => {
    const copied = dockerfile
      .filter((i) => i.stage !== lastStage && i.op === 'COPY' && !i.args.includes('--from'))
      .flatMap((i) => words(i.args).slice(0, -1));
    for (const dir of ['api', 'bin', 'dashboards', 'database', 'relay-ingest', 'shared', 'workers']) {
      assert.ok(copied.includes(dir), `${dir}/ is copied into the build`);
    }
    for (const src of copied) assert.ok(existsSync(path.join(PROJECT_ROOT, src)), `COPY source ${src} exists`);
  });

  it('builds every stage on the current Node LTS, the one the suite also runs under', () => {
    const arg = dockerfile.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    assert.equal(arg?.args, `NODE_IMAGE=node:${NODE_LTS_MAJOR}-bookworm-slim`);
    for (const stage of stages) assert.match(stage.args, /^\$\{NODE_IMAGE\}(\s|$)/, `FROM ${stage.args}`);
    const lts = readFileSync(path.join(PROJECT_ROOT, 'scripts/node-lts.sh'), 'utf8');
    assert.match(
      lts,
      new RegExp(`NODE_LTS_VERSION:-${NODE_LTS_MAJOR}\\.\\d+\\.\\d+\\}`),
      'scripts/node-lts.sh fetches the same major',
    );
    const { engines } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    assert.ok(
      engines.node.split('||').some((range) => new RegExp(`^\\^${NODE_LTS_MAJOR}\\.`).test(range.trim())),
      `engines ${engines.node} accepts Node ${NODE_LTS_MAJOR}`,
    );
    assert.match(
      readFileSync(path.join(PROJECT_ROOT, '.ci/run'), 'utf8'),
      /node-lts\.sh/,
      '.ci/run runs the suite under it',
    );
  });

  it('runs as a non-root user', () => {
    const user = one('USER').args.split(':')[0]!;
    assert.notEqual(user, 'root');
    assert.notEqual(user, '0');
    assert.ok(
      runtime.some((i) => i.op === 'RUN' && new RegExp(`useradd\\b.*\\b${user}\\b`).test(i.args)),
      `user ${user} is created`,
    );
    const userAt = runtime.indexOf(one('USER'));
    assert.ok(
      runtime.slice(userAt).every((i) => i.op !== 'RUN'),
      'nothing runs as root after USER',
    );
  });

  it('checks /health, enters through keyfarm and runs a real command by default', () => {
    const check = one('HEALTHCHECK').args;
    assert.match(check, /--interval=\d+s/);
    const route = /\/health\b[^'"]*/.exec(check)?.[0];
    assert.ok(route && probeRoutes().has(route), `HEALTHCHECK hits a real route: ${route}`);
    assert.deepEqual(words(one('ENTRYPOINT').args), ['keyfarm']);
    assert.ok(
      runtime.some(
        (i) => i.op === 'RUN' && /ln -s \/app\/dist\/bin\/keyfarm\.js \/usr\/local\/bin\/keyfarm/.test(i.args),
      ),
    );
    assert.ok(
      readFileSync(path.join(PROJECT_ROOT, 'bin/keyfarm.ts'), 'utf8').startsWith('#!/usr/bin/env node\n'),
      'the CLI runs as a program',
    );
    const [command] = words(one('CMD').args);
    assert.ok(cliCommands().has(command!), `CMD ${command} is a keyfarm command`);
    assert.equal(one('STOPSIGNAL').args, 'SIGTERM');
  });

  it('bakes in no secret and names only real settings', () => {
    const env = runtime
      .filter((i) => i.op === 'ENV')
      .flatMap((i) => [...i.args.matchAll(/(?:^|\s)(\w+)=/g)].map((m) => m[1]!));
    assert.deepEqual(unknownSettings(env), []);
    for (const i of dockerfile.filter((x) => x.op === 'ENV' || x.op === 'ARG')) {
      assert.doesNotMatch(i.args, /PASSWORD|SECRET|TOKEN|DATABASE_URL|REDIS_URL|MASTER_KEY|_KEY=/, `${i.op} ${i.args}`);
    }
    for (const i of dockerfile.filter((x) => x.op === 'COPY' || x.op === 'ADD')) {
      assert.doesNotMatch(i.args, /\.env\b|\.key\b|\.data\b/, `${i.op} ${i.args}`);
    }
    const ignored = readDeploy('Dockerfile.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const pattern of ['.env', '*.key', '.data', 'node_modules', 'dist', '*.dump']) {
      assert.ok(ignored.includes(pattern), `the build context leaves out ${pattern}`);
    }
  });

  it('runs Node with the flags of bin/node-options.ts, as do the systemd units and npm start', () => {
    const env = runtime
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    assert.match(env, new RegExp(`\\bNODE_OPTIONS=${NODE_OPTIONS}(\\s|$)`));
    for (const role of ['api', 'relay-ingest', 'workers']) {
      assert.match(
        readDeploy(`systemd/keyfarm-${role}.service`),
        new RegExp(`^Environment=.*\\bNODE_OPTIONS=${NODE_OPTIONS}(\\s|$)`, 'm'),
        role,
      );
    }
    const run = readFileSync(path.join(PROJECT_ROOT, 'scripts/run.sh'), 'utf8');
    assert.ok(run.includes(`export NODE_OPTIONS="${NODE_OPTIONS}`), 'scripts/run.sh exports them');
  });
});
