// deploy/compose.yaml: every role plus Postgres, Redis, the migration job, Prometheus and Grafana, each
// Keyfarm service running a real command with real settings, and the monitoring files it mounts present.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  DEPLOY_DIR,
  ROLES,
  cliCommands,
  durationSeconds,
  probeRoutes,
  readDeploy,
  unknownSettings,
  yamlDocument,
} from './deploy-helpers.js';

const compose = yamlDocument('compose.yaml');
const services: Record<string, any> = compose.services;
const keyfarmServices = Object.entries(services).filter(([, s]) => s.image === 'keyfarm:local');

/** A host path of a volume entry, resolved from the compose file's directory; undefined for named volumes. */
function hostPath(volume: string): string | undefined {
  const source = volume.split(':')[0]!;
  return source.startsWith('.') ? path.resolve(DEPLOY_DIR, source) : undefined;
}

describe('deploy/compose.yaml', () => {
  it('runs Postgres, Redis, the migration job, every role, Prometheus and Grafana', () => {
    for (const name of ['postgres', 'redis', 'migrate', ...ROLES, 'prometheus', 'grafana'])
      assert.ok(services[name], `service ${name}`);
    for (const role of ROLES) assert.deepEqual(services[role].command, [role]);
    assert.deepEqual(services.migrate.command, ['migrate']);
    assert.equal(services.migrate.restart, 'no');
  });

  it('builds every Keyfarm service from deploy/Dockerfile and runs a real command', () => {
    const commands = cliCommands();
    assert.ok(keyfarmServices.length >= 4);
    for (const [name, s] of keyfarmServices) {
      assert.equal(
        path.resolve(DEPLOY_DIR, s.build.context, s.build.dockerfile),
        path.join(DEPLOY_DIR, 'Dockerfile'),
        name,
      );
      assert.ok(commands.has(s.command[0]), `${name}: ${s.command[0]} is a keyfarm command`);
    }
  });

  it('starts the roles after healthy servers and a finished migration, and stops them gracefully', () => {
    for (const role of ROLES) {
      const s = services[role];
      assert.equal(s.depends_on.migrate.condition, 'service_completed_successfully', role);
      assert.equal(s.depends_on.postgres.condition, 'service_healthy', role);
      assert.equal(s.depends_on.redis.condition, 'service_healthy', role);
      assert.ok(durationSeconds(s.stop_grace_period) >= 30, `${role} stop_grace_period`);
      assert.equal(s.read_only, true, `${role} has a read-only root`);
      assert.deepEqual(s.cap_drop, ['ALL']);
      assert.ok(
        s.volumes.some((v: string) => v.endsWith(`:${s.environment.DATA_DIR}`)),
        `${role}: DATA_DIR (the master key) is a volume`,
      );
    }
    for (const name of ['postgres', 'redis']) assert.ok(services[name].healthcheck?.test, `${name} has a health check`);
    assert.ok(services.workers.deploy.replicas >= 2, 'more than one worker takes shards');
  });

  it('sets only real settings, and a metrics port on workers-only processes', () => {
    for (const [name, s] of keyfarmServices) {
      assert.deepEqual(unknownSettings(Object.keys(s.environment)), [], name);
      assert.match(s.environment.DATABASE_URL, /^postgres:\/\/.+@postgres:5432\//);
      assert.match(s.environment.REDIS_URL, /^redis:\/\/redis:6379/);
      assert.equal(s.environment.HOST, '0.0.0.0');
    }
    assert.equal(services.workers.environment.METRICS_PORT, services.workers.environment.PORT);
  });

  it('guards /api/metrics with METRICS_TOKEN and has Prometheus send that same token', () => {
    for (const [name, s] of keyfarmServices)
      assert.match(s.environment.METRICS_TOKEN, /^\$\{METRICS_TOKEN:\?/, `${name}: METRICS_TOKEN is required`);
    assert.deepEqual(compose.secrets.metrics_token, { environment: 'METRICS_TOKEN' });
    assert.ok(services.prometheus.secrets.includes('metrics_token'), 'the token is mounted into Prometheus');
    const configMount = (services.prometheus.volumes as string[]).find(
      (v) => v.split(':')[1] === '/etc/prometheus/prometheus.yml',
    )!;
    const prometheus = parseYaml(readDeploy(path.relative(DEPLOY_DIR, hostPath(configMount)!)));
    const job = prometheus.scrape_configs.find((j: any) => j.job_name === 'keyfarm');
    assert.deepEqual(job.authorization, { type: 'Bearer', credentials_file: '/run/secrets/metrics_token' });
  });

  it('scrapes every role on a real route and loads the alert rules and the dashboard from dashboards/', () => {
    const promVolumes: string[] = services.prometheus.volumes;
    const configMount = promVolumes.find((v) => v.split(':')[1] === '/etc/prometheus/prometheus.yml')!;
    const prometheus = parseYaml(readDeploy(path.relative(DEPLOY_DIR, hostPath(configMount)!)));
    const job = prometheus.scrape_configs.find((j: any) => j.job_name === 'keyfarm');
    assert.ok(probeRoutes().has(job.metrics_path), `metrics_path ${job.metrics_path} is served`);
    const scraped = job.dns_sd_configs.flatMap((c: any) => c.names);
    assert.deepEqual([...scraped].sort(), [...ROLES].sort());
    for (const c of job.dns_sd_configs) assert.equal(c.port, 3000);

    const rules = promVolumes.find((v) => v.includes('dashboards/prometheus/alerts.yml'));
    assert.ok(rules, 'the alert rules are mounted');
    assert.ok(existsSync(hostPath(rules)!), 'dashboards/prometheus/alerts.yml exists');
    const rulesDir = path.posix.dirname(rules.split(':')[1]!);
    assert.ok(
      prometheus.rule_files.some((g: string) => g.startsWith(`${rulesDir}/`)),
      'rule_files covers the mount',
    );

    const grafana: string[] = services.grafana.volumes;
    const dashboards = grafana.find((v) => v.includes('dashboards/grafana'))!;
    assert.ok(dashboards, 'the dashboards are mounted');
    const provider = parseYaml(
      readDeploy(path.relative(DEPLOY_DIR, hostPath(grafana.find((v) => v.includes('provisioning/dashboards'))!)!)),
    );
    assert.equal(provider.providers[0].options.path, dashboards.split(':')[1]);
    const datasource = parseYaml(
      readDeploy(path.relative(DEPLOY_DIR, hostPath(grafana.find((v) => v.includes('provisioning/datasources'))!)!)),
    );
    assert.equal(datasource.datasources[0].url, 'http://prometheus:9090');
    for (const v of grafana.map(hostPath).filter(Boolean)) assert.ok(existsSync(v!), `${v} exists`);
    assert.ok(existsSync(path.join(hostPath(dashboards)!, 'keyfarm.json')), 'dashboards/grafana/keyfarm.json exists');
  });
});
