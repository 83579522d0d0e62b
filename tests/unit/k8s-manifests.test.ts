/** The kustomize manifests: least-privilege RBAC, graceful worker shutdown, no secret values. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';

const docs = (file: string) => YAML.parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS());

describe('k8s/base', () => {
  it("the worker's Role grants only the verbs it uses, in its namespace, and never Secrets", () => {
    const [role, binding] = docs('k8s/base/rbac.yaml');
    expect(role.kind).toBe('Role');
    expect(binding).toMatchObject({ kind: 'RoleBinding', subjects: [{ kind: 'ServiceAccount', name: 'tao-worker' }] });
    const grants = role.rules.flatMap((r: { resources: string[]; verbs: string[] }) =>
      r.resources.map((res) => [res, r.verbs.sort().join(',')]),
    );
    expect(Object.fromEntries(grants)).toEqual({
      jobs: 'create,delete,get,list,patch,watch',
      pods: 'get,list,watch',
      'pods/log': 'get',
      services: 'create,delete,get',
    });
    // jobs are in the batch group, the rest in the core group; nothing else (events are no longer read)
    expect(role.rules.map((r: { apiGroups: string[] }) => r.apiGroups.join())).toEqual(['batch', '', '', '']);
    expect(JSON.stringify(role)).not.toMatch(/secrets|events|\*/);
  });

  it("nothing binds the stage pods' account: it has no Kubernetes API rights", () => {
    const bindings = docs('k8s/base/rbac.yaml').filter((d) => /Binding$/.test(d.kind));
    expect(bindings.flatMap((b) => b.subjects.map((s: { name: string }) => s.name))).toEqual(['tao-worker']);
  });

  it('the worker drains on shutdown and takes credentials only from Secrets', () => {
    const [deployment] = docs('k8s/base/worker.yaml');
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).toBe('tao-worker');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    const env = pod.containers[0].env as { name: string; value?: string; valueFrom?: unknown }[];
    expect(env.find((e) => e.name === 'TEMPORAL_API_KEY')).toMatchObject({
      valueFrom: { secretKeyRef: { name: 'tao-temporal' } },
    });
    expect(env.every((e) => !/KEY$|SECRET|TOKEN/.test(e.name) || e.valueFrom !== undefined)).toBe(true);
  });

  it('stage pods have their own account without API access', () => {
    const accounts = docs('k8s/base/serviceaccounts.yaml');
    expect(accounts.find((a) => a.metadata.name === 'tao-stage')).toMatchObject({
      automountServiceAccountToken: false,
    });
  });
});
