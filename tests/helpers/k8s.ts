/** The shared Kubernetes control plane started by tests/global-setup.ts, as client objects. */
import { KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { kubeconfigYaml, RESTRICTED_USER } from '../../scripts/lib/k8s-dev.js';

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
