// docs/RUNBOOK.md names only what really exists: a section for every alert (where the alert's runbook
// annotation points), `keyfarm` commands and options the CLI has, metrics the code exports, endpoints
// the api serves, settings the config knows, and files in the repository.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigSchema } from '../../shared/config.js';
import { loadRules } from '../support/dashboards.js';
import { exportedMetricNames } from '../support/metric-names.js';
import { KEYFARM_CLI, PROJECT_ROOT } from '../support/paths.js';

const RUNBOOK = readFileSync(path.join(PROJECT_ROOT, 'docs', 'RUNBOOK.md'), 'utf8');

/** Inline code spans and the lines of fenced code blocks. */
function codeSnippets(markdown: string): string[] {
  const fenced = [...markdown.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].flatMap((m) => m[1]!.split('\n'));
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  const inline = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  return [...fenced, ...inline].map((s) => s.trim()).filter(Boolean);
}

/** `keyfarm <command> [args]` invocations, leading VAR=value assignments dropped. */
function keyfarmInvocations(): string[][] {
  return codeSnippets(RUNBOOK)
    .map((s) => s.replace(/#.*$/, '').trim().split(/\s+/))
    .map((words) => words.slice(words.findIndex((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w))))
    .filter((words) => words[0] === 'keyfarm' && words.length > 1);
}

function cli(...args: string[]): string {
  return execFileSync(process.execPath, [KEYFARM_CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
}

/** GitHub's anchor of a heading. */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('docs/RUNBOOK.md', () => {
  it('has a section for every alert, where its runbook annotation points', () => {
    const anchors = new Set([...RUNBOOK.matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchorOf(m[1]!)));
    const alerts = loadRules().filter((r) => r.alert);
    assert.ok(alerts.length >= 7);
    for (const rule of alerts) {
      assert.match(RUNBOOK, new RegExp(`^### ${rule.alert}$`, 'm'), `a section for ${rule.alert}`);
      const anchor = rule.annotations!.runbook!.split('#')[1]!;
      assert.ok(anchors.has(anchor), `${rule.alert}: anchor #${anchor}`);
    }
  });

  it('covers daily checks, incident steps, maintenance and disaster recovery with RTO and RPO', () => {
    for (const heading of [
      '## Daily checks',
      '## Alerts',
      '## Incident steps',
      '## Maintenance',
      '## Disaster recovery',
      '### KEK rotation',
      '### Backups',
      '### Scaling',
    ]) {
      assert.ok(RUNBOOK.includes(`\n${heading}\n`), heading);
    }
    assert.match(RUNBOOK, /\*\*RPO\*\*/);
    assert.match(RUNBOOK, /\*\*RTO\*\*/);
  });

  it('names only keyfarm commands and options the CLI has', () => {
    const usage = cli('--help');
    const commands = new Set([...usage.matchAll(/^ {2}([a-z][\w-]*)\s/gm)].map((m) => m[1]!));
    assert.ok(commands.has('backup') && commands.has('restore') && commands.has('rotate-kek'), usage);
    const invocations = keyfarmInvocations();
    const used = new Set(invocations.map((w) => w[1]!));
    for (const command of [
      'backup',
      'restore',
      'rotate-kek',
      'shard-count',
      'migrate',
      'api',
      'workers',
      'relay-ingest',
    ]) {
      assert.ok(used.has(command), `the runbook uses keyfarm ${command}`);
    }
    for (const words of invocations) {
      const command = words[1]!;
      assert.ok(commands.has(command), `keyfarm ${command} is a command: ${words.join(' ')}`);
      const options = words.filter((w) => w.startsWith('--'));
      if (options.length === 0) continue;
      const help = cli(command, '--help');
      for (const option of options) assert.ok(help.includes(option.split('=')[0]!), `keyfarm ${command} has ${option}`);
    }
  });

  it('names only metrics the code exports and recording rules that exist', async () => {
    const exported = await exportedMetricNames();
    const recorded = new Set(
      loadRules()
        .filter((r) => r.record)
        .map((r) => r.record!),
    );
    const named = new Set([...RUNBOOK.matchAll(/\bkeyfarm(?:_[a-z0-9_]*[a-z0-9]|:[\w:]+)\b/g)].map((m) => m[0]));
    assert.ok(named.size > 20);
    for (const name of named) assert.ok(exported.has(name) || recorded.has(name), `${name} is exported`);
  });

  it('names only endpoints the processes serve', () => {
    const sources = [...sourceFiles(path.join(PROJECT_ROOT, 'api')), path.join(PROJECT_ROOT, 'bin', 'health-server.ts')]
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const endpoints = codeSnippets(RUNBOOK)
      .map((s) => /^(?:(?:GET|POST) )?(\/(?:api|health|healthz|admin|account)\b[\w/.-]*)$/.exec(s)?.[1])
      .filter((p): p is string => p !== undefined);
    assert.ok(endpoints.length >= 6);
    for (const endpoint of new Set(endpoints)) assert.ok(sources.includes(`'${endpoint}'`), `${endpoint} is a route`);
  });

  it('names only settings the config knows, and files that exist', () => {
    const settings = new Set(Object.keys(ConfigSchema.properties));
    const snippets = codeSnippets(RUNBOOK);
    for (const s of snippets.filter((x) => /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^PORT$|^HOST$/.test(x))) {
      assert.ok(settings.has(s), `${s} is a setting`);
    }
    for (const file of snippets.filter((x) => /^(deploy|dashboards|docs|shared|test|scripts)\/[\w./-]+$/.test(x))) {
      assert.ok(existsSync(path.join(PROJECT_ROOT, file)), `${file} exists`);
    }
  });
});
