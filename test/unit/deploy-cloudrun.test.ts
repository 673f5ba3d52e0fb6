// deploy/cloudrun: a Knative Service per role on Cloud Run, running that role with real settings, probes
// on real routes, secrets from Secret Manager only, Cloud KMS for the keys, and the background roles
// kept running with their CPU always allocated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigSchema } from '../../shared/config.js';
import { ROLES, deployFiles, probeRoutes, unknownSettings, yamlDocuments } from './deploy-helpers.js';

const SECRET_SETTINGS = ['DATABASE_URL', 'REDIS_URL', 'ADMIN_PASSWORD'];

describe('deploy/cloudrun', () => {
  it('has one file per role', () => {
    assert.deepEqual(deployFiles('cloudrun', '.yaml'), ROLES.map((r) => `keyfarm-${r}.yaml`).sort());
  });

  for (const role of ROLES) {
    describe(role, () => {
      const [service] = yamlDocuments(`cloudrun/keyfarm-${role}.yaml`);
      const template = service.spec.template;
      const container = template.spec.containers[0];
      const env = new Map<string, any>(container.env.map((e: any) => [e.name, e]));

      it('is a Knative Service running the role', () => {
        assert.equal(service.apiVersion, 'serving.knative.dev/v1');
        assert.equal(service.kind, 'Service');
        assert.equal(service.metadata.name, `keyfarm-${role}`);
        assert.deepEqual(container.args, [role]);
        assert.equal(template.spec.containers.length, 1);
      });

      it('probes real routes on the port Cloud Run gives it', () => {
        const port = container.ports[0].containerPort;
        assert.equal(container.startupProbe.httpGet.path, '/healthz/startup');
        assert.equal(container.livenessProbe.httpGet.path, '/health');
        for (const probe of [container.startupProbe, container.livenessProbe]) {
          assert.ok(probeRoutes().has(probe.httpGet.path));
          assert.equal(probe.httpGet.port, port);
        }
        assert.equal(env.has('PORT'), false, 'PORT is set by Cloud Run');
        if (role === 'workers')
          assert.equal(Number(env.get('METRICS_PORT').value), port, 'workers serve probes on METRICS_PORT');
        assert.equal(env.get('HOST').value, '0.0.0.0');
      });

      it('reads real settings, secrets only from Secret Manager, keys wrapped by Cloud KMS', () => {
        assert.deepEqual(unknownSettings(env.keys()), []);
        for (const name of SECRET_SETTINGS) {
          assert.ok(env.get(name)?.valueFrom?.secretKeyRef?.name, `${name} comes from Secret Manager`);
          assert.equal(env.get(name).value, undefined);
        }
        const pattern = new RegExp((ConfigSchema.properties.GCP_KMS_KEY as unknown as { pattern: string }).pattern);
        assert.match(env.get('GCP_KMS_KEY').value, pattern);
        const drain =
          Number(env.get('SHUTDOWN_HTTP_TIMEOUT_MS').value) + Number(env.get('SHUTDOWN_JOBS_TIMEOUT_MS').value);
        assert.ok(drain < 10_000, 'the drain fits in the 10 s Cloud Run gives after SIGTERM');
      });

      it('keeps instances running, with CPU always allocated for the background roles', () => {
        const a = template.metadata.annotations;
        assert.ok(Number(a['autoscaling.knative.dev/minScale']) >= 1, 'never scaled to zero');
        assert.ok(Number(a['autoscaling.knative.dev/maxScale']) >= Number(a['autoscaling.knative.dev/minScale']));
        if (role !== 'api') {
          assert.equal(a['run.googleapis.com/cpu-throttling'], 'false');
          assert.equal(service.metadata.annotations['run.googleapis.com/ingress'], 'internal');
        }
        assert.ok(container.resources.limits.cpu && container.resources.limits.memory);
      });
    });
  }
});
