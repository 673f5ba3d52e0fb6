// The Prometheus rules in dashboards/prometheus: valid for promtool, passing their own unit tests
// (alerts.test.yml), covering every alert the operations issue asks for, and naming only metrics the
// code exports.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ALERTS_FILE, ALERT_TESTS_FILE, RULES_DIR, alertNames, loadRules } from '../support/dashboards.js';
import { exportedMetricNames, metricNamesIn } from '../support/metric-names.js';

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: RULES_DIR, encoding: 'utf8', timeout: 60_000 });
  if (r.error)
    throw new Error(
      `promtool could not run (scripts/ensure-deps.sh installs the prometheus package): ${r.error.message}`,
    );
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('Prometheus rules', () => {
  it('promtool is installed', () => {
    assert.match(execFileSync('promtool', ['--version'], { encoding: 'utf8' }), /promtool, version/);
  });

  it('pass `promtool check rules`', () => {
    const r = promtool('check', 'rules', ALERTS_FILE);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('pass their unit tests (`promtool test rules`)', () => {
    const r = promtool('test', 'rules', ALERT_TESTS_FILE);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('alert on what the issue lists', () => {
    const alerts = alertNames();
    for (const name of [
      'KeyfarmBackpressureDropping', // requests dropped by backpressure
      'KeyfarmCacheMissRatioHigh', // cache miss ratio high
      'KeyfarmAuthErrorsSpiking', // auth errors spiking
      'KeyfarmHttp5xxRateHigh', // 5xx above 5% for 5 minutes
      'KeyfarmLatencyP95High', // p95 latency above its bound
      'KeyfarmNoRelayConnected', // no relay connected
      'KeyfarmShardWithoutOwner', // a shard with no owner
    ]) {
      assert.ok(alerts.includes(name), name);
    }
    const fivexx = loadRules().find((r) => r.alert === 'KeyfarmHttp5xxRateHigh')!;
    assert.equal(fivexx.for, '5m');
    assert.match(fivexx.expr, /> 0\.05\b/);
  });

  it('test every alert firing and not firing', () => {
    const tests = (
      parse(readFileSync(ALERT_TESTS_FILE, 'utf8')) as {
        tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
      }
    ).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alertNames()) {
      const mine = cases.filter((c) => c.alertname === alert);
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} is tested firing`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} is tested not firing`,
      );
    }
  });

  it('give every alert a severity, a summary and its runbook section', () => {
    for (const rule of loadRules().filter((r) => r.alert)) {
      assert.match(rule.labels?.severity ?? '', /^(page|warning)$/, rule.alert);
      assert.ok(rule.annotations?.summary, `${rule.alert} has a summary`);
      assert.equal(rule.annotations?.runbook, `docs/RUNBOOK.md#${rule.alert!.toLowerCase()}`);
    }
  });

  it('name only metrics the code exports, and recording rules defined here', async () => {
    const exported = await exportedMetricNames();
    const rules = loadRules();
    const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record!));
    for (const rule of rules) {
      const names = metricNamesIn(rule.expr);
      assert.ok(names.length > 0, `${rule.alert ?? rule.record} names a metric`);
      for (const name of names) {
        assert.ok(
          exported.has(name) || recorded.has(name),
          `${rule.alert ?? rule.record}: ${name} is neither exported nor recorded`,
        );
      }
    }
  });
});
