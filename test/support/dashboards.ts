// The operations files under dashboards/: Prometheus rules and the Grafana dashboard, as tests read them.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { PROJECT_ROOT } from './paths.js';

export const RULES_DIR = path.join(PROJECT_ROOT, 'dashboards', 'prometheus');
export const ALERTS_FILE = path.join(RULES_DIR, 'alerts.yml');
export const ALERT_TESTS_FILE = path.join(RULES_DIR, 'alerts.test.yml');
export const GRAFANA_DASHBOARD_FILE = path.join(PROJECT_ROOT, 'dashboards', 'grafana', 'keyfarm.json');

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Every rule of alerts.yml, recording and alerting, in file order. */
export function loadRules(): Rule[] {
  const doc = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

export function alertNames(): string[] {
  return loadRules()
    .filter((r) => r.alert)
    .map((r) => r.alert!);
}
