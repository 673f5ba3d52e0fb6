// The metric names Keyfarm's code really exports, and the metric names a PromQL expression refers to, so
// dashboards, alert rules and the runbook can be checked against the code.
import { registry } from '../../shared/metrics.js';
// Imported for their side effect: they register relay-ingest's metrics in the process registry.
import '../../relay-ingest/metrics.js';

/** Every sample name the registry exports: counters and gauges by name, histograms as _bucket/_sum/_count. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const metric of await registry.getMetricsAsJSON()) {
    names.add(metric.name);
    const type = String(metric.type);
    if (type === 'histogram' || type === 'summary') {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

/** Functions, aggregations and keywords of PromQL: identifiers that are not metric names. */
const PROMQL_WORDS = new Set([
  'sum',
  'avg',
  'min',
  'max',
  'count',
  'count_values',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'group',
  'rate',
  'irate',
  'increase',
  'delta',
  'idelta',
  'deriv',
  'predict_linear',
  'histogram_quantile',
  'absent',
  'absent_over_time',
  'clamp',
  'clamp_min',
  'clamp_max',
  'label_replace',
  'label_join',
  'vector',
  'scalar',
  'time',
  'timestamp',
  'avg_over_time',
  'min_over_time',
  'max_over_time',
  'sum_over_time',
  'count_over_time',
  'last_over_time',
  'quantile_over_time',
  'stddev_over_time',
  'present_over_time',
  'changes',
  'resets',
  'round',
  'ceil',
  'floor',
  'abs',
  'sqrt',
  'exp',
  'ln',
  'log2',
  'log10',
  'sort',
  'sort_desc',
  'sgn',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric (and recording rule) names in a PromQL expression. Grafana variables ($x, ${x}), strings,
 * label matchers ({...}), ranges ([...]) and label lists (by (...), on (...)) are removed first; what
 * identifiers are left, less PromQL's own words, are metric names.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*/g)) {
    if (!PROMQL_WORDS.has(m[0].toLowerCase())) names.add(m[0]);
  }
  return [...names];
}
