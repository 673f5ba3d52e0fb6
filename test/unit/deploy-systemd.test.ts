// deploy/systemd: a hardened unit per role, the migration unit and the target, checked directive by
// directive, then by `systemd-analyze verify` (Debian's systemd package), whose every complaint fails.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ROLES, cliCommands, deployFiles, durationSeconds, readDeploy, unknownSettings } from './deploy-helpers.js';

type Unit = Map<string, [string, string][]>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      unit.set(section, unit.get(section) ?? []);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0 && section, `not a directive: ${line}`);
    unit.get(section)!.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return unit;
}

const values = (unit: Unit, section: string, key: string) =>
  (unit.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
const value = (unit: Unit, section: string, key: string) => values(unit, section, key).at(-1);

/** Environment= values: NAME=value pairs separated by spaces. */
const environmentNames = (unit: Unit) =>
  values(unit, 'Service', 'Environment').flatMap((v) => v.split(/\s+/).map((p) => p.split('=')[0]!));

const HARDENING: Record<string, string> = {
  NoNewPrivileges: 'yes',
  ProtectSystem: 'strict',
  ProtectHome: 'yes',
  PrivateTmp: 'yes',
  PrivateDevices: 'yes',
  ProtectKernelTunables: 'yes',
  ProtectKernelModules: 'yes',
  ProtectControlGroups: 'yes',
  RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
  RestrictNamespaces: 'yes',
  RestrictSUIDSGID: 'yes',
  LockPersonality: 'yes',
  CapabilityBoundingSet: '',
  AmbientCapabilities: '',
  SystemCallArchitectures: 'native',
  User: 'keyfarm',
  Group: 'keyfarm',
  UMask: '0077',
};

const serviceFiles = [...ROLES.map((r) => `keyfarm-${r}.service`), 'keyfarm-migrate.service'];

describe('deploy/systemd', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'kf-systemd-verify-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('has a unit per role, the migration unit and a target wanting them all', () => {
    assert.deepEqual(deployFiles('systemd', '.service'), [...serviceFiles].sort());
    const target = parseUnit(readDeploy('systemd/keyfarm.target'));
    const wanted = values(target, 'Unit', 'Wants').flatMap((v) => v.split(/\s+/));
    assert.deepEqual([...wanted].sort(), [...serviceFiles].sort());
    assert.equal(value(target, 'Install', 'WantedBy'), 'multi-user.target');
  });

  for (const file of serviceFiles) {
    const role = file.replace(/^keyfarm-|\.service$/g, '');
    it(`${file}: runs keyfarm ${role} as keyfarm, hardened, with a real environment`, () => {
      const unit = parseUnit(readDeploy(`systemd/${file}`));
      for (const [key, expected] of Object.entries(HARDENING)) {
        assert.equal(value(unit, 'Service', key), expected, `${key}=${expected}`);
      }
      const filters = values(unit, 'Service', 'SystemCallFilter');
      assert.ok(filters.includes('@system-service'), 'SystemCallFilter=@system-service');
      assert.notEqual(value(unit, 'Service', 'MemoryDenyWriteExecute'), 'yes', 'V8 needs writable executable memory');
      const dataDir = /DATA_DIR=(\S+)/.exec(values(unit, 'Service', 'Environment').join(' '))?.[1];
      assert.equal(dataDir, '/var/lib/keyfarm');
      assert.equal(value(unit, 'Service', 'StateDirectory'), 'keyfarm', 'systemd creates DATA_DIR for the user');
      assert.equal(value(unit, 'Service', 'ReadWritePaths'), dataDir, 'only DATA_DIR is writable');
      assert.deepEqual(unknownSettings(environmentNames(unit)), []);

      const exec = value(unit, 'Service', 'ExecStart')!.split(/\s+/);
      assert.match(exec[1]!, /\/dist\/bin\/keyfarm\.js$/);
      assert.equal(exec[2], role);
      assert.ok(cliCommands().has(role));
      assert.equal(exec.length, 3);
      if (role === 'migrate') {
        assert.equal(value(unit, 'Service', 'Type'), 'oneshot');
      } else {
        assert.ok(durationSeconds(`${value(unit, 'Service', 'TimeoutStopSec')}s`) >= 30, 'TimeoutStopSec >= 30');
        assert.equal(value(unit, 'Service', 'KillSignal'), 'SIGTERM');
        assert.equal(value(unit, 'Service', 'Restart'), 'on-failure');
        assert.ok(values(unit, 'Unit', 'Requires').includes('keyfarm-migrate.service'), 'starts after the migration');
        const listens = environmentNames(unit).filter((n) => n === (role === 'workers' ? 'METRICS_PORT' : 'PORT'));
        assert.equal(listens.length, 1, 'each role has its own port on a shared host');
      }
      assert.equal(value(unit, 'Install', 'WantedBy'), 'keyfarm.target');
    });
  }

  function verify(dir: string, files: string[]): { status: number | null; complaints: string[] } {
    const res = spawnSync('systemd-analyze', ['verify', '--man=no', ...files.map((f) => path.join(dir, f))], {
      encoding: 'utf8',
    });
    if (res.error)
      throw new Error(
        `systemd-analyze: ${res.error.message} (scripts/ensure-deps.sh installs Debian's systemd package)`,
      );
    const complaints = `${res.stdout}${res.stderr}`.split('\n').filter((l) => l.trim() !== '');
    return { status: res.status, complaints };
  }

  /** The units as deploy/ has them, but with this machine's node where /usr/bin/node is missing (verify checks ExecStart exists). */
  function copyUnits(dir: string, edit: (name: string, text: string) => string = (_n, t) => t): string[] {
    const names = [...deployFiles('systemd', '.service'), 'keyfarm.target'];
    for (const name of names) {
      let text = readDeploy(`systemd/${name}`);
      if (!existsSync('/usr/bin/node')) text = text.replaceAll('/usr/bin/node', process.execPath);
      writeFileSync(path.join(dir, name), edit(name, text));
    }
    return names;
  }

  it('passes systemd-analyze verify without a single complaint', () => {
    const version = execFileSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).split('\n')[0];
    const dir = path.join(scratch, 'units');
    execFileSync('mkdir', ['-p', dir]);
    const { status, complaints } = verify(dir, copyUnits(dir));
    assert.equal(status, 0, complaints.join('\n'));
    assert.deepEqual(complaints, [], `${version}: ${complaints.join('\n')}`);
  });

  it('would fail on a unit error (the check itself works)', () => {
    const dir = path.join(scratch, 'broken');
    execFileSync('mkdir', ['-p', dir]);
    const names = copyUnits(dir, (name, text) =>
      name === 'keyfarm-api.service' ? text.replace('ProtectHome=yes', 'ProtectHome=yes\nProtectHomme=yes') : text,
    );
    assert.ok(
      verify(dir, names).complaints.some((l) => /keyfarm-api\.service.*ProtectHomme/.test(l)),
      'a misspelt directive is reported',
    );
    const missing = path.join(scratch, 'missing-binary');
    execFileSync('mkdir', ['-p', missing]);
    const again = copyUnits(missing, (_name, text) => text.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/node'));
    assert.notEqual(verify(missing, again).status, 0, 'an ExecStart that does not exist fails');
  });
});
