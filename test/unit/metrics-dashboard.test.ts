// dashboards/grafana/keyfarm.json: a Grafana dashboard whose every query is valid PromQL (promtool parses
// it) and names only metrics the code exports, with panels for everything the observability issue lists.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { GRAFANA_DASHBOARD_FILE, loadRules } from '../support/dashboards.js';
import { exportedMetricNames, metricNamesIn } from '../support/metric-names.js';

interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string }[] };
}

const dashboard = JSON.parse(readFileSync(GRAFANA_DASHBOARD_FILE, 'utf8')) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queries = allPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** A query as Prometheus would get it from Grafana with every variable at "All". */
function asPromQL(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.*').replaceAll('$door', 'http|nip46');
}

describe('Grafana dashboard', () => {
  it('is a dashboard Grafana can load: title, uid, schema version, datasource variable, laid-out panels', () => {
    assert.equal(dashboard.title, 'Keyfarm');
    assert.match(dashboard.uid, /^[\w-]{1,40}$/);
    assert.ok(dashboard.schemaVersion >= 30);
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource' && v.type === 'datasource'));
    const ids = allPanels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of allPanels) {
      assert.ok(p.gridPos.w > 0 && p.gridPos.w <= 24 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
      if (p.type === 'row') continue;
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, not a template.
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the datasource variable`);
      assert.ok((p.targets ?? []).length > 0, `${p.title} has queries`);
    }
  });

  it('names only metrics the code exports', async () => {
    const exported = await exportedMetricNames();
    const recorded = new Set(
      loadRules()
        .filter((r) => r.record)
        .map((r) => r.record!),
    );
    assert.ok(queries.length > 20);
    for (const q of queries) {
      const names = metricNamesIn(q.expr);
      assert.ok(names.length > 0, `${q.panel}: ${q.expr}`);
      for (const name of names)
        assert.ok(exported.has(name) || recorded.has(name), `${q.panel}: ${name} is not exported`);
    }
  });

  it('shows what the issue lists', () => {
    const all = queries.map((q) => q.expr).join('\n');
    for (const name of [
      'keyfarm_rpc_duration_seconds_bucket', // latency per method and door
      'keyfarm_queue_depth',
      'keyfarm_queue_oldest_job_age_seconds',
      'keyfarm_cache_hits_total', // hit ratio
      'keyfarm_cache_misses_total',
      'keyfarm_key_manager_calls_total',
      'keyfarm_key_manager_duration_seconds_bucket',
      'keyfarm_relays_connected',
      'keyfarm_db_pool_in_use',
      'keyfarm_db_pool_waiting',
      'keyfarm_process_cpu_seconds_total',
      'keyfarm_process_resident_memory_bytes',
      'keyfarm_shard_has_owner',
      'keyfarm_backpressure_rejected_total',
    ]) {
      assert.ok(all.includes(name), name);
    }
    assert.match(all, /sum by \(le, door\)/, 'latency per door');
    assert.match(all, /sum by \(le, method\)/, 'latency per method');
  });

  it('queries that promtool parses', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kf-dashboard-'));
    try {
      const file = path.join(dir, 'dashboard-queries.yml');
      const rules = queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: asPromQL(q.expr) }));
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 60_000 });
      assert.ifError(r.error);
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
