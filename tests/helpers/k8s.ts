/** The shared Kubernetes control plane started by tests/global-setup.ts, as client objects. */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, inject } from 'vitest';
import { kubeconfigYaml, RESTRICTED_USER } from '../..//scripts/dev/k8s-dev.js';

/** Admin (system:masters) KubeConfig. */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(inject('k8sKubeconfig'));
  return kc;
}

/** A KubeConfig for `server` with a bearer token (a service account's, or the unbound restricted user's). */
export function tokenKubeConfig(token: string = inject('k8sRestrictedToken'), user = RESTRICTED_USER): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(kubeconfigYaml(inject('k8sServer'), token, user));
  return kc;
}

/**
 * A namespace of its own for one test file: created before its tests, deleted after them (the garbage
 * collector and namespace controller take what is left in it). Returns its name.
 */
export function testNamespace(prefix: string): string {
  const name = `${prefix}-${randomUUID().slice(0, 8)}`;
  const core = () => adminKubeConfig().makeApiClient(CoreV1Api);
  beforeAll(() => core().createNamespace({ body: { metadata: { name } } }));
  afterAll(() =>
    core()
      .deleteNamespace({ name })
      .catch(() => undefined),
  );
  return name;
}
