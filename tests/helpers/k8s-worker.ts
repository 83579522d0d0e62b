/**
 * The project's kustomize manifests (k8s/) on a real control plane: render them with the real kustomize CLI
 * (scripts/k8s/build-kustomize.sh, cached), apply them, and act as the worker's ServiceAccount with a token
 * from the TokenRequest API, so tests run with exactly the permissions k8s/base/rbac.yaml grants.
 */
import {
  ApiException,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const K8S_DIR = path.join(ROOT, 'k8s');
/** The worker's ServiceAccount and Role (k8s/base). */
export const WORKER_ACCOUNT = 'tao-worker';

let kustomizePath: string | undefined;

/** The kustomize binary: built from the Go module proxy once (~30 s cold), then cached (instant). */
export function kustomizeBinary(): string {
  if (!kustomizePath) {
    const out = execFileSync('bash', [path.join(ROOT, 'scripts', 'k8s', 'build-kustomize.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 15 * 60_000,
    });
    kustomizePath = out.trim().split('\n').pop()!;
  }
  return kustomizePath;
}

/**
 * `kustomize build dir` → the objects. With `namespace`, the directory is built through a wrapper
 * kustomization that sets that namespace: kustomize then moves every namespaced object there, renames the
 * Namespace object, and points the RoleBinding's ServiceAccount subjects at it (what an overlay would do).
 */
export function kustomizeBuild(dir: string, options: { namespace?: string } = {}): KubernetesObject[] {
  let target = path.resolve(dir);
  let wrapper: string | undefined;
  if (options.namespace) {
    wrapper = fs.mkdtempSync(path.join(os.tmpdir(), 'tao-kustomize-'));
    // kustomize accepts only relative paths to other kustomizations
    const kustomization = {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace: options.namespace,
      resources: [path.relative(wrapper, target)],
    };
    fs.writeFileSync(path.join(wrapper, 'kustomization.yaml'), YAML.stringify(kustomization));
    target = wrapper;
  }
  try {
    const out = execFileSync(kustomizeBinary(), ['build', target], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 16 << 20,
    });
    return YAML.parseAllDocuments(out)
      .map((d) => d.toJS() as KubernetesObject | null)
      .filter((o): o is KubernetesObject => o !== null);
  } finally {
    if (wrapper) fs.rmSync(wrapper, { recursive: true, force: true });
  }
}

/** The HTTP status of a call: 200 when it resolved, the ApiException's code otherwise (anything else throws). */
export async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (e) {
    if (e instanceof ApiException) return e.code;
    throw e;
  }
}

/** Server-side apply (idempotent: creates or updates), as field manager `tao-tests`; Namespaces first. */
export async function applyObjects(kc: KubeConfig, objects: KubernetesObject[]): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const ordered = [...objects.filter((o) => o.kind === 'Namespace'), ...objects.filter((o) => o.kind !== 'Namespace')];
  for (const o of ordered) {
    await api.patch(o, undefined, undefined, 'tao-tests', true, PatchStrategy.ServerSideApply);
  }
}

/** A token for a ServiceAccount from the TokenRequest API (audience: the apiserver's), valid `seconds`. */
export async function serviceAccountToken(
  admin: KubeConfig,
  namespace: string,
  name: string,
  seconds = 3600,
): Promise<string> {
  const request = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: seconds } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return token;
}

/** A KubeConfig for admin's current cluster that authenticates with `token` as `user`. */
export function kubeConfigWithToken(admin: KubeConfig, token: string, user: string): KubeConfig {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('the admin KubeConfig has no current cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token }],
    contexts: [{ name: 'worker', cluster: cluster.name, user }],
    currentContext: 'worker',
  });
  return kc;
}

/**
 * Resolves once `kc` may `verb` `resource` in `namespace` (SelfSubjectAccessReview): a new RoleBinding and a
 * new ServiceAccount reach the apiserver's authorizer and token authenticator through informers, a moment
 * after they are written.
 */
export async function waitForAccess(
  kc: KubeConfig,
  namespace: string,
  attributes: { verb: string; group?: string; resource: string } = { verb: 'create', group: 'batch', resource: 'jobs' },
  timeoutMs = 15_000,
): Promise<void> {
  const api = kc.makeApiClient(AuthorizationV1Api);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const review = await api.createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: { namespace, ...attributes } } },
      });
      if (review.status?.allowed) return;
      last = `not allowed: ${review.status?.reason ?? ''}`;
    } catch (e) {
      last = e instanceof ApiException ? `HTTP ${e.code}` : String(e); // 401 until the token's account is seen
    }
    if (Date.now() > deadline) {
      throw new Error(`${attributes.verb} ${attributes.resource} in ${namespace} still refused: ${last}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kinds of the base's objects that make up the worker's (and the stage pods') identity and permissions. */
const RBAC_KINDS = new Set(['ServiceAccount', 'Role', 'RoleBinding']);

/**
 * Makes `namespace` ready for a worker with the real permissions, and returns a KubeConfig acting as it:
 * renders k8s/base with kustomize (namespace replaced by `namespace`), creates the Namespace if it is missing,
 * applies the namespace-scoped RBAC objects (ServiceAccounts tao-worker and tao-stage, Role and RoleBinding
 * tao-worker; server-side apply, so calling it again is harmless), obtains a token for
 * `system:serviceaccount:<namespace>:tao-worker` through the TokenRequest API (valid 1 h) and waits until the
 * apiserver lets it create Jobs there. Deleting the namespace afterwards is the caller's business.
 */
export async function workerKubeConfig(admin: KubeConfig, namespace: string): Promise<KubeConfig> {
  const objects = kustomizeBuild(path.join(K8S_DIR, 'base'), { namespace });
  const core = admin.makeApiClient(CoreV1Api);
  if ((await statusOf(core.readNamespace({ name: namespace }))) === 404) {
    const ns = objects.find((o) => o.kind === 'Namespace') ?? { apiVersion: 'v1', kind: 'Namespace' };
    await applyObjects(admin, [{ ...ns, metadata: { ...ns.metadata, name: namespace } }]);
  }
  await applyObjects(
    admin,
    objects.filter((o) => RBAC_KINDS.has(o.kind ?? '') && o.metadata?.namespace === namespace),
  );
  const token = await serviceAccountToken(admin, namespace, WORKER_ACCOUNT);
  const kc = kubeConfigWithToken(admin, token, `system:serviceaccount:${namespace}:${WORKER_ACCOUNT}`);
  await waitForAccess(kc, namespace);
  return kc;
}
