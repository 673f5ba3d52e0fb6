// deploy/k8s: a Deployment per role with real probe routes, a grace period covering the drain, non-root
// read-only containers with resources, HPA, PDBs, the api Service, the migration Job, config and
// placeholder-only secrets, and every reference between the objects resolving.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  ROLES,
  cliCommands,
  deployFiles,
  looksLikeRealSecret,
  probeRoutes,
  unknownSettings,
  yamlDocuments,
} from './deploy-helpers.js';

const files = deployFiles('k8s', '.yaml');
const objects = files
  .filter((f) => f !== 'kustomization.yaml')
  .flatMap((f) => yamlDocuments(`k8s/${f}`).map((o) => ({ ...o, file: f })));
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const named = (kind: string, name: string) => ofKind(kind).find((o) => o.metadata.name === name);
const deployment = (role: string) => named('Deployment', `keyfarm-${role}`);
const configMap = named('ConfigMap', 'keyfarm-config');

/** Every pod spec: Deployments, Jobs, CronJobs. */
function podSpecs(): { where: string; spec: any; labels: Record<string, string> }[] {
  return objects.flatMap((o) => {
    if (o.kind === 'Deployment' || o.kind === 'Job')
      return [
        {
          where: `${o.kind} ${o.metadata.name ?? o.metadata.generateName}`,
          spec: o.spec.template.spec,
          labels: o.spec.template.metadata?.labels ?? {},
        },
      ];
    if (o.kind === 'CronJob')
      return [{ where: `CronJob ${o.metadata.name}`, spec: o.spec.jobTemplate.spec.template.spec, labels: {} }];
    return [];
  });
}

const containersOf = (spec: any): any[] => [...(spec.initContainers ?? []), ...spec.containers];
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('deploy/k8s', () => {
  it('parses, and every object has an apiVersion, a kind, a name and the keyfarm namespace', () => {
    assert.ok(objects.length >= 15, `${objects.length} objects`);
    for (const o of objects) {
      assert.ok(o.apiVersion && o.kind, `${o.file}: apiVersion and kind`);
      assert.ok(o.metadata?.name || o.metadata?.generateName, `${o.file}: a name`);
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'keyfarm', `${o.file} ${o.kind}`);
    }
  });

  it('lists every manifest in kustomization.yaml but the on-demand rotation Job', () => {
    const [kustomization] = yamlDocuments('k8s/kustomization.yaml');
    const expected = files.filter((f) => f !== 'kustomization.yaml' && f !== 'job-rotate-kek.yaml');
    assert.deepEqual([...kustomization.resources].sort(), expected);
  });

  it('has a Deployment per role running that role, with probes on real routes', () => {
    const routes = probeRoutes();
    for (const role of ROLES) {
      const d = deployment(role);
      assert.ok(d, `Deployment keyfarm-${role}`);
      const c = d.spec.template.spec.containers[0];
      assert.deepEqual(c.args, [role]);
      const expected = {
        startupProbe: '/healthz/startup',
        livenessProbe: '/health',
        readinessProbe: '/healthz/ready',
      } as const;
      for (const [probe, route] of Object.entries(expected)) {
        assert.equal(c[probe]?.httpGet?.path, route, `${role} ${probe}`);
        assert.ok(routes.has(route), `${route} is served`);
        const port = c[probe].httpGet.port;
        assert.ok(
          c.ports.some((p: any) => p.name === port || p.containerPort === port),
          `${role} ${probe} port ${port} is a container port`,
        );
      }
      assert.ok(
        matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels),
        `${role} selector matches its pods`,
      );
      assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0, `${role} rolls without losing capacity`);
      assert.equal(d.spec.template.metadata.annotations['prometheus.io/path'], '/api/metrics');
    }
    // A workers-only process serves probes on METRICS_PORT: it must be the port the probes use.
    const w = deployment('workers').spec.template.spec.containers[0];
    const metricsPort = Number(w.env.find((e: any) => e.name === 'METRICS_PORT').value);
    assert.ok(w.ports.some((p: any) => p.name === w.readinessProbe.httpGet.port && p.containerPort === metricsPort));
  });

  it('gives every pod a grace period of at least 30 s that covers the whole drain', () => {
    const drainMs = ['SHUTDOWN_DELAY_MS', 'SHUTDOWN_HTTP_TIMEOUT_MS', 'SHUTDOWN_JOBS_TIMEOUT_MS'].reduce(
      (s, k) => s + Number(configMap.data[k]),
      0,
    );
    for (const role of ROLES) {
      const grace = deployment(role).spec.template.spec.terminationGracePeriodSeconds;
      assert.ok(grace >= 30, `${role}: ${grace} s`);
      assert.ok(grace * 1000 > drainMs, `${role}: ${grace} s covers the ${drainMs} ms drain`);
    }
  });

  it('runs every container non-root on a read-only root, without privileges, with requests and limits', () => {
    for (const { where, spec } of podSpecs()) {
      assert.equal(spec.securityContext.runAsNonRoot, true, where);
      assert.ok(spec.securityContext.runAsUser > 0, where);
      assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault', where);
      assert.equal(spec.automountServiceAccountToken, false, where);
      for (const c of containersOf(spec)) {
        const at = `${where} ${c.name}`;
        assert.equal(c.securityContext.runAsNonRoot, true, at);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, at);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, at);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL'], at);
        for (const r of ['cpu', 'memory']) {
          assert.ok(c.resources.requests[r] && c.resources.limits[r], `${at}: ${r} request and limit`);
        }
        assert.match(c.image, /keyfarm:\d+\.\d+\.\d+$/, `${at}: a pinned image`);
        const mounts = new Set((spec.volumes ?? []).map((v: any) => v.name));
        for (const m of c.volumeMounts ?? []) assert.ok(mounts.has(m.name), `${at}: volume ${m.name} is defined`);
      }
    }
  });

  it('runs only real commands and reads only real settings from existing ConfigMaps and Secrets', () => {
    const commands = cliCommands();
    const settingNames = new Set<string>(Object.keys(configMap.data));
    for (const s of ofKind('Secret'))
      if (s.metadata.name === 'keyfarm-secrets') for (const k of Object.keys(s.stringData)) settingNames.add(k);
    for (const { where, spec } of podSpecs()) {
      for (const c of spec.containers) {
        const command = c.args?.[0] ?? /keyfarm (\S+)/.exec(c.command.join(' '))?.[1];
        assert.ok(commands.has(command), `${where}: ${command} is a keyfarm command`);
        for (const e of c.env ?? []) settingNames.add(e.name);
        for (const from of c.envFrom ?? []) {
          if (from.configMapRef)
            assert.ok(named('ConfigMap', from.configMapRef.name), `${where}: ConfigMap ${from.configMapRef.name}`);
          if (from.secretRef)
            assert.ok(named('Secret', from.secretRef.name), `${where}: Secret ${from.secretRef.name}`);
        }
      }
      for (const v of spec.volumes ?? []) {
        if (v.secret) assert.ok(named('Secret', v.secret.secretName), `${where}: Secret ${v.secret.secretName}`);
        if (v.secret) assert.equal(v.secret.defaultMode, 0o440, `${where}: the key Secret is not world-readable`);
        if (v.persistentVolumeClaim)
          assert.ok(named('PersistentVolumeClaim', v.persistentVolumeClaim.claimName), where);
      }
    }
    assert.deepEqual(unknownSettings(settingNames), []);
  });

  it('holds placeholders only in its Secrets, and the master key where MASTER_KEY_PATH points', () => {
    for (const s of ofKind('Secret')) {
      for (const [k, v] of Object.entries({ ...(s.stringData ?? {}), ...(s.data ?? {}) })) {
        assert.equal(looksLikeRealSecret(String(v)), false, `Secret ${s.metadata.name} ${k} is a placeholder`);
      }
    }
    assert.equal(configMap.data.GCP_KMS_KEY, undefined);
    const keyDir = path.posix.dirname(configMap.data.MASTER_KEY_PATH);
    for (const role of ROLES) {
      const spec = deployment(role).spec.template.spec;
      const mount = spec.containers[0].volumeMounts.find((m: any) => m.mountPath === keyDir);
      assert.ok(mount, `${role}: ${keyDir} is mounted`);
      const init = spec.initContainers.find((c: any) =>
        c.volumeMounts.some((m: any) => m.name === mount.name && !m.readOnly),
      );
      assert.ok(init, `${role}: an init container writes the master key`);
      assert.match(init.command.join(' '), new RegExp(`umask 077[\\s\\S]*${keyDir}[\\s\\S]*master\\.key\\.keyring`));
      assert.equal(
        spec.volumes.find((v: any) => v.name === mount.name).emptyDir.medium,
        'Memory',
        'the key stays off disk',
      );
    }
  });

  it('autoscales api and workers, keeps one pod of each role through disruptions, and exposes the api', () => {
    for (const role of ['api', 'workers']) {
      const hpa = named('HorizontalPodAutoscaler', `keyfarm-${role}`);
      assert.ok(hpa, `HPA for ${role}`);
      assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
      assert.ok(deployment(role) && hpa.spec.scaleTargetRef.name === `keyfarm-${role}`);
      assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    }
    const shards = Number(configMap.data.SHARD_COUNT);
    assert.ok(
      named('HorizontalPodAutoscaler', 'keyfarm-workers').spec.maxReplicas <= shards,
      'no more workers than shards',
    );
    for (const role of ROLES) {
      const pdbs = ofKind('PodDisruptionBudget').filter((p) =>
        matches(p.spec.selector.matchLabels, deployment(role).spec.template.metadata.labels),
      );
      assert.equal(pdbs.length, 1, `one PDB for ${role}`);
      assert.ok(pdbs[0].spec.minAvailable >= 1 && pdbs[0].spec.minAvailable < deployment(role).spec.replicas);
    }
    const svc = named('Service', 'keyfarm-api');
    assert.ok(matches(svc.spec.selector, deployment('api').spec.template.metadata.labels));
    assert.ok(!matches(svc.spec.selector, deployment('workers').spec.template.metadata.labels));
    const apiPorts = deployment('api').spec.template.spec.containers[0].ports.map((p: any) => p.name);
    for (const p of svc.spec.ports) assert.ok(apiPorts.includes(p.targetPort), `targetPort ${p.targetPort}`);
  });

  it('migrates with a Job, backs up nightly and can rotate the KEK on demand', () => {
    const migrate = named('Job', 'keyfarm-migrate');
    assert.deepEqual(migrate.spec.template.spec.containers[0].args, ['migrate']);
    const backup = named('CronJob', 'keyfarm-backup');
    assert.equal(backup.spec.concurrencyPolicy, 'Forbid');
    assert.match(backup.spec.jobTemplate.spec.template.spec.containers[0].command.join(' '), /keyfarm backup --out/);
    const rotate = ofKind('Job').find((j) => j.metadata.generateName === 'keyfarm-rotate-kek-');
    assert.equal(rotate.spec.template.spec.containers[0].args[0], 'rotate-kek');
  });
});
