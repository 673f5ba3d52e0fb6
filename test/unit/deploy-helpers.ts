// What the deploy tests check the files in deploy/ against: the commands the CLI really has, the
// settings shared/config.ts really reads, and the probe routes the HTTP servers really serve.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigSchema } from '../../shared/config.js';
import { KEYFARM_CLI, PROJECT_ROOT } from '../support/paths.js';

export const DEPLOY_DIR = path.join(PROJECT_ROOT, 'deploy');

/** The long-running roles, each deployed on its own. */
export const ROLES = ['api', 'relay-ingest', 'workers'] as const;

/** Variables a deploy file may set that are not Keyfarm settings but mean something to the runtime. */
const RUNTIME_VARIABLES = new Set(['NODE_ENV', 'NODE_OPTIONS', 'GOOGLE_APPLICATION_CREDENTIALS']);

/** Commands the CLI lists in its usage (`keyfarm --help`). */
export function cliCommands(): Set<string> {
  const usage = execFileSync(process.execPath, [KEYFARM_CLI, '--help'], { encoding: 'utf8' });
  return new Set(
    usage
      .split('\n')
      .slice(1)
      .map((l) => /^\s+([a-z-]+)\s/.exec(l)?.[1])
      .filter((c): c is string => !!c),
  );
}

/** Names in the environment a deploy file sets that Keyfarm would not read (typos, stale names). */
export function unknownSettings(names: Iterable<string>): string[] {
  const known = new Set(Object.keys(ConfigSchema.properties));
  return [...names].filter((n) => !known.has(n) && !RUNTIME_VARIABLES.has(n));
}

function source(file: string): string {
  return readFileSync(path.join(PROJECT_ROOT, file), 'utf8');
}

/**
 * Probe paths served by both HTTP servers a role can have: the api (api/routes/health.ts) and the
 * health server of a relay-ingest-only or workers-only process (bin/health-server.ts).
 */
export function probeRoutes(): Set<string> {
  const api = source('api/routes/health.ts');
  const health = source('bin/health-server.ts');
  const candidates = ['/health', '/healthz/startup', '/healthz/ready', '/api/metrics'];
  return new Set(candidates.filter((p) => api.includes(`'${p}'`) && health.includes(`'${p}'`)));
}

export function readDeploy(file: string): string {
  return readFileSync(path.join(DEPLOY_DIR, file), 'utf8');
}

export function deployFiles(dir: string, suffix: string): string[] {
  return readdirSync(path.join(DEPLOY_DIR, dir))
    .filter((f) => f.endsWith(suffix))
    .sort();
}

/** Every YAML document of a file. Kubernetes reads YAML 1.1 (0440 is octal there), so that is the default. */
export function yamlDocuments(file: string, version: '1.1' | '1.2' = '1.1'): any[] {
  const docs = parseAllDocuments(readDeploy(file), { version, merge: true });
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS({ maxAliasCount: -1 })).filter((d) => d !== null);
}

export function yamlDocument(file: string): any {
  return parseYaml(readDeploy(file), { merge: true, maxAliasCount: -1 });
}

/** "45s", "1m30s", 45 → seconds. */
export function durationSeconds(value: string | number): number {
  if (typeof value === 'number') return value;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let matched = '';
  for (let m = re.exec(value); m; m = re.exec(value)) {
    matched += m[0];
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  if (matched !== value) throw new Error(`not a duration: ${value}`);
  return total;
}

/** Values that look like a real secret rather than a placeholder. */
export function looksLikeRealSecret(value: string): boolean {
  return value !== '' && !/REPLACE_ME|PLACEHOLDER|example|change-me|local-only/i.test(value);
}
