/**
 * The kustomize manifests (k8s/) against the real kube-apiserver of the test control plane
 * (tests/global-setup.ts): rendered by the real kustomize CLI, every object of both overlays passes the
 * apiserver's validation and admission (server-side dry-run), a broken copy does not, and the worker's Role,
 * applied for real, lets its ServiceAccount do exactly what the Kubernetes executor does and nothing else.
 */
import {
  ApiException,
  AuthorizationV1Api,
  BatchV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  Log,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Job,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { generateKey, loadCodecFromEnv } from '../../workers/codec.js';
import { adminKubeConfig, tokenKubeConfig } from '../helpers/k8s.js';
import {
  applyObjects,
  K8S_DIR,
  kustomizeBinary,
  kustomizeBuild,
  serviceAccountToken,
  statusOf,
  waitForAccess,
  workerKubeConfig,
} from '../helpers/k8s-worker.js';

let admin: KubeConfig;
const namespaces: string[] = [];
/** A fresh namespace name (deleted after the file). */
const freshNamespace = (what: string) => {
  const ns = `tao-${what}-${randomBytes(3).toString('hex')}`;
  namespaces.push(ns);
  return ns;
};

beforeAll(() => {
  admin = adminKubeConfig();
  kustomizeBinary(); // builds it if the cache is empty (about 30 s), else instant
});

afterAll(async () => {
  const core = admin.makeApiClient(CoreV1Api);
  for (const name of namespaces) await statusOf(core.deleteNamespace({ name }));
});

interface Verdict {
  object: string;
  code: number;
  message: string;
}
const id = (o: KubernetesObject) => `${o.kind}/${o.metadata?.name}`;
/** Whether `o` exists on the server: the status of reading it (200 or 404). */
const readStatus = (o: KubernetesObject) =>
  statusOf(
    KubernetesObjectApi.makeApiClient(admin).read({
      apiVersion: o.apiVersion!,
      kind: o.kind!,
      metadata: { name: o.metadata!.name!, namespace: o.metadata?.namespace },
    }),
  );

/**
 * Server-side dry-run (`dryRun: 'All'`) of each object, as the admin: the apiserver decodes, defaults,
 * validates and admits it, and persists nothing. Namespaced objects need their namespace to exist (the
 * NamespaceLifecycle admission plugin refuses them otherwise, dry-run or not), so the Namespace objects are
 * dry-run first and then created for real.
 */
async function dryRun(objects: KubernetesObject[]): Promise<Verdict[]> {
  const api = KubernetesObjectApi.makeApiClient(admin);
  const verdicts: Verdict[] = [];
  const check = async (o: KubernetesObject) => {
    try {
      const created = await api.create(o, undefined, 'All');
      // the server's answer is the object as it would be stored: defaulted, with a uid, yet not persisted
      expect(created.metadata?.uid).toBeTruthy();
      verdicts.push({ object: id(o), code: 201, message: '' });
    } catch (e) {
      if (!(e instanceof ApiException)) throw e;
      verdicts.push({ object: id(o), code: e.code, message: String(e.body) });
    }
  };
  const nsObjects = objects.filter((o) => o.kind === 'Namespace');
  for (const o of nsObjects) await check(o);
  for (const o of nsObjects) expect(await readStatus(o)).toBe(404); // dry-run: not created
  await applyObjects(admin, nsObjects);
  for (const o of objects.filter((x) => x.kind !== 'Namespace')) await check(o);
  return verdicts;
}

describe('k8s manifests through kustomize and the real kube-apiserver', () => {
  it('kustomize renders both overlays into one namespace, the one the base declares', () => {
    for (const overlay of ['dev', 'prod']) {
      const objects = kustomizeBuild(path.join(K8S_DIR, 'overlays', overlay));
      const kinds = objects.map(id);
      expect(kinds).toEqual(
        expect.arrayContaining([
          'Namespace/tao',
          'ServiceAccount/tao-worker',
          'ServiceAccount/tao-stage',
          'Role/tao-worker',
          'RoleBinding/tao-worker',
          'Deployment/tao-worker',
        ]),
      );
      const namespaced = objects.filter((o) => o.kind !== 'Namespace');
      expect(namespaced.every((o) => o.metadata?.namespace === 'tao')).toBe(true);
      const binding = objects.find((o) => o.kind === 'RoleBinding') as unknown as {
        subjects: { namespace: string }[];
      };
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'tao-worker', namespace: 'tao' }]);
    }
  });

  it('payload encryption: off in the base and dev (no key file, the worker starts without a Secret), on in prod with a required Secret', () => {
    type Container = {
      name: string;
      env?: { name: string; value?: string }[];
      volumeMounts?: { name: string; mountPath: string }[];
    };
    type PodSpec = {
      containers: Container[];
      volumes?: { name: string; secret?: { secretName: string; optional?: boolean; items?: { path: string }[] } }[];
    };
    const podSpecs = (dir: string): [string, PodSpec][] =>
      kustomizeBuild(dir).flatMap((o): [string, PodSpec][] => {
        const spec = o as unknown as {
          spec: { template?: { spec: PodSpec }; jobTemplate?: { spec: { template: { spec: PodSpec } } } };
        };
        if (o.kind === 'Deployment') return [[id(o), spec.spec.template!.spec]];
        if (o.kind === 'CronJob') return [[id(o), spec.spec.jobTemplate!.spec.template.spec]];
        return [];
      });
    const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '']));

    for (const dir of [path.join(K8S_DIR, 'base'), path.join(K8S_DIR, 'overlays', 'dev')]) {
      const specs = podSpecs(dir);
      expect(specs.map(([o]) => o).sort()).toEqual(['CronJob/tao-reaper', 'Deployment/tao-worker']);
      for (const [, spec] of specs) {
        const c = spec.containers[0]!;
        expect(envOf(c)).not.toHaveProperty('TAO_CODEC_KEY_FILE');
        expect(spec.volumes ?? []).toEqual([]);
        // what the worker's start-up makes of that environment: no codec, and no error
        expect(loadCodecFromEnv(envOf(c))).toBeUndefined();
      }
    }

    const prod = podSpecs(path.join(K8S_DIR, 'overlays', 'prod'));
    expect(prod.map(([o]) => o).sort()).toEqual(['CronJob/tao-reaper', 'Deployment/tao-worker']);
    const key = generateKey();
    for (const [, spec] of prod) {
      const c = spec.containers[0]!;
      const file = envOf(c).TAO_CODEC_KEY_FILE!;
      const volume = spec.volumes?.find((v) => v.secret?.secretName === 'tao-codec');
      // a required Secret: without it the kubelet does not start the pod (no worker that writes plaintext)
      expect(volume?.secret?.optional).not.toBe(true);
      const mount = c.volumeMounts?.find((m) => m.name === volume?.name);
      expect(file).toBe(`${mount!.mountPath}/${volume!.secret!.items![0]!.path}`);
      // the Secret's key, as the kubelet mounts it, is what the worker's start-up reads
      const mounted = fs.mkdtempSync(path.join(os.tmpdir(), 'tao-codec-'));
      try {
        fs.writeFileSync(path.join(mounted, volume!.secret!.items![0]!.path), `${key}\n`);
        const codec = loadCodecFromEnv({ TAO_CODEC_KEY_FILE: file.replace(mount!.mountPath, mounted) });
        expect(codec).toBeDefined();
      } finally {
        fs.rmSync(mounted, { recursive: true, force: true });
      }
    }
  });

  it.each(['dev', 'prod'])('every object of the %s overlay passes server-side dry-run', async (overlay) => {
    // the overlay's objects, moved by kustomize to a fresh namespace (no clash with other tests or runs)
    const ns = freshNamespace(`dry-${overlay}`);
    const objects = kustomizeBuild(path.join(K8S_DIR, 'overlays', overlay), { namespace: ns });
    expect(objects.length).toBeGreaterThanOrEqual(7);
    const verdicts = await dryRun(objects);
    expect(verdicts.filter((v) => v.code !== 201)).toEqual([]);
    expect(verdicts).toHaveLength(objects.length);
    // nothing but the namespace was persisted
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) expect(await readStatus(o)).toBe(404);
  });

  it('a broken copy of the manifests is rejected, naming the invalid fields', async () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'tao-k8s-broken-'));
    try {
      fs.cpSync(K8S_DIR, copy, { recursive: true });
      // 1. the base's Role: a rule without verbs
      const rbacFile = path.join(copy, 'base', 'rbac.yaml');
      const rbac = YAML.parseAllDocuments(fs.readFileSync(rbacFile, 'utf8')).map((d) => d.toJS());
      rbac[0].rules[1].verbs = [];
      fs.writeFileSync(rbacFile, rbac.map((d) => YAML.stringify(d)).join('---\n'));
      // 2. the dev overlay's patch: a negative replica count
      const overlayFile = path.join(copy, 'overlays', 'dev', 'kustomization.yaml');
      const overlay = fs.readFileSync(overlayFile, 'utf8');
      const broken = overlay.replace(/path: \/spec\/replicas\n(\s*)value: 1\n/, 'path: /spec/replicas\n$1value: -1\n');
      expect(broken).not.toBe(overlay);
      fs.writeFileSync(overlayFile, broken);

      const ns = freshNamespace('broken');
      const verdicts = await dryRun(kustomizeBuild(path.join(copy, 'overlays', 'dev'), { namespace: ns }));
      const rejected = verdicts.filter((v) => v.code !== 201);
      expect(rejected.map((v) => [v.object, v.code])).toEqual([
        ['Role/tao-worker', 422],
        ['Deployment/tao-worker', 422],
      ]);
      expect(rejected[0]!.message).toMatch(/rules\[1\]\.verbs: Required value/);
      expect(rejected[1]!.message).toMatch(/spec\.replicas: Invalid value: -1/);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe("the worker's ServiceAccount, with the dev overlay applied for real", () => {
  let ns: string;
  let worker: KubeConfig;
  const user = () => `system:serviceaccount:${ns}:tao-worker`;

  beforeAll(async () => {
    ns = freshNamespace('rbac');
    const objects = kustomizeBuild(path.join(K8S_DIR, 'overlays', 'dev'), { namespace: ns });
    await applyObjects(admin, objects); // Namespace, ServiceAccounts, Role, RoleBinding, ConfigMap, Deployment...
    const token = await serviceAccountToken(admin, ns, 'tao-worker');
    worker = tokenKubeConfig(token, user());
    await waitForAccess(worker, ns);
  });

  it('the apiserver knows the token as the ServiceAccount, and its rules are exactly the Role', async () => {
    const auth = worker.makeApiClient(AuthorizationV1Api);
    const rules = async (namespace: string) => {
      const review = await auth.createSelfSubjectRulesReview({ body: { spec: { namespace } } });
      // the groups the Role is about; the rest are the defaults every authenticated user has (self reviews)
      const grants: Record<string, string> = {};
      for (const r of review.status?.resourceRules ?? []) {
        for (const group of r.apiGroups ?? []) {
          if (group !== '' && group !== 'batch') continue;
          for (const res of r.resources ?? []) grants[`${group}/${res}`] = [...r.verbs].sort().join(',');
        }
      }
      return grants;
    };
    expect(await rules(ns)).toEqual({
      'batch/jobs': 'create,delete,get,list,patch,watch',
      '/pods': 'get,list,watch',
      '/pods/log': 'get',
      '/services': 'create,delete,get',
    });
    expect(await rules('default')).toEqual({});
  });

  it('may do everything the Kubernetes executor does in its namespace', async () => {
    const batch = worker.makeApiClient(BatchV1Api);
    const core = worker.makeApiClient(CoreV1Api);
    const name = 'rbac-check';
    const job: V1Job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'tao' } },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            serviceAccountName: 'tao-stage',
            automountServiceAccountToken: false,
            // no node matches: the pod stays Pending without a node, so reading its log never dials a kubelet
            nodeSelector: { 'tao.dev/no-such-node': 'true' },
            containers: [{ name: 'stage', image: 'tao-jobs:test' }],
          },
        },
      },
    };
    // jobs: create, get, list, watch, patch
    await batch.createNamespacedJob({ namespace: ns, body: job });
    expect((await batch.readNamespacedJob({ name, namespace: ns })).metadata?.name).toBe(name);
    const listed = await batch.listNamespacedJob({ namespace: ns, labelSelector: 'app.kubernetes.io/managed-by=tao' });
    expect(listed.items.map((j) => j.metadata?.name)).toEqual([name]);
    expect(await firstWatchEvent(worker, `/apis/batch/v1/namespaces/${ns}/jobs`)).toEqual(['ADDED', name]);
    const patched = await batch.patchNamespacedJob(
      { name, namespace: ns, body: { metadata: { annotations: { 'tao.dev/checked': 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(patched.metadata?.annotations?.['tao.dev/checked']).toBe('yes');

    // pods: list (the job controller made one), get, watch; pods/log: get
    const selector = `batch.kubernetes.io/job-name=${name}`;
    let pods = await core.listNamespacedPod({ namespace: ns, labelSelector: selector });
    for (let i = 0; i < 100 && pods.items.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      pods = await core.listNamespacedPod({ namespace: ns, labelSelector: selector });
    }
    const pod = pods.items[0]?.metadata?.name;
    expect(pod).toBeTruthy();
    expect((await core.readNamespacedPod({ name: pod!, namespace: ns })).spec?.nodeName).toBeUndefined();
    expect(await firstWatchEvent(worker, `/api/v1/namespaces/${ns}/pods`)).toEqual(['ADDED', pod]);
    // pods/log through the client's Log (what the executor's PodLogs uses). What the apiserver answers for a
    // pod without a node (200, empty) is not the point; that it is no 403 is, as it is for a user without a
    // binding.
    const readLog = (kc: KubeConfig) =>
      statusOf(new Log(kc).log(ns, pod!, 'stage', new PassThrough(), { follow: false }));
    expect(await readLog(worker)).not.toBe(403);
    expect(await readLog(tokenKubeConfig())).toBe(403);

    // services: create, get, delete (a headless Service, as for a multi-pod Job's rendezvous)
    await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name },
        spec: { clusterIP: 'None', selector: { 'batch.kubernetes.io/job-name': name }, ports: [{ port: 29500 }] },
      },
    });
    expect((await core.readNamespacedService({ name, namespace: ns })).spec?.clusterIP).toBe('None');
    await core.deleteNamespacedService({ name, namespace: ns });
    expect(await statusOf(core.readNamespacedService({ name, namespace: ns }))).toBe(404);

    // jobs: delete, with its pods (Background propagation: the garbage collector removes them)
    await batch.deleteNamespacedJob({ name, namespace: ns, propagationPolicy: 'Background' });
    let left = 1;
    for (let i = 0; i < 150 && left > 0; i++) {
      const jobs = await statusOf(batch.readNamespacedJob({ name, namespace: ns }));
      const podsLeft = (await core.listNamespacedPod({ namespace: ns, labelSelector: selector })).items.length;
      left = (jobs === 404 ? 0 : 1) + podsLeft;
      if (left > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe(0);
  });

  it('is forbidden everything else: Secrets, other namespaces, nodes, bare pods, tokens, events', async () => {
    const batch = worker.makeApiClient(BatchV1Api);
    const core = worker.makeApiClient(CoreV1Api);
    const job: V1Job = { metadata: { name: 'not-allowed' }, spec: { template: { spec: { containers: [] } } } };
    // thunks: each call starts only when its turn comes
    const forbidden = {
      'get a Secret in its namespace': () => core.readNamespacedSecret({ name: 'tao-temporal', namespace: ns }),
      'list Secrets in its namespace': () => core.listNamespacedSecret({ namespace: ns }),
      'create a Job in another namespace': () => batch.createNamespacedJob({ namespace: 'default', body: job }),
      'list pods in another namespace': () => core.listNamespacedPod({ namespace: 'default' }),
      'list nodes': () => core.listNode(),
      'create a pod directly': () =>
        core.createNamespacedPod({
          namespace: ns,
          body: { metadata: { name: 'bare' }, spec: { containers: [{ name: 'c', image: 'x' }] } },
        }),
      'update (PUT) a Job': () => batch.replaceNamespacedJob({ name: 'not-allowed', namespace: ns, body: job }),
      'list Services': () => core.listNamespacedService({ namespace: ns }),
      'list events': () => core.listNamespacedEvent({ namespace: ns }),
      'read ConfigMaps': () => core.listNamespacedConfigMap({ namespace: ns }),
      'mint a token for the stage account': () =>
        core.createNamespacedServiceAccountToken({
          name: 'tao-stage',
          namespace: ns,
          body: { spec: { audiences: [] } },
        }),
    };
    const codes: Record<string, number> = {};
    for (const [what, call] of Object.entries(forbidden)) codes[what] = await statusOf(call());
    expect(codes).toEqual(Object.fromEntries(Object.keys(forbidden).map((k) => [k, 403])));
  });

  it('workerKubeConfig(admin, namespace) sets up any namespace and acts as its tao-worker', async () => {
    const other = freshNamespace('helper');
    const kc = await workerKubeConfig(admin, other);
    const again = await workerKubeConfig(admin, other); // idempotent
    for (const config of [kc, again]) {
      const auth = config.makeApiClient(AuthorizationV1Api);
      const can = async (namespace: string, verb: string, resource: string, group = '') =>
        (
          await auth.createSelfSubjectAccessReview({
            body: { spec: { resourceAttributes: { namespace, verb, resource, group } } },
          })
        ).status?.allowed;
      expect(await can(other, 'create', 'jobs', 'batch')).toBe(true);
      expect(await can(other, 'get', 'pods')).toBe(true);
      expect(await can(other, 'get', 'secrets')).toBe(false);
      expect(await can(ns, 'create', 'jobs', 'batch')).toBe(false); // another worker namespace: not its own
    }
    const batch = kc.makeApiClient(BatchV1Api);
    expect((await batch.listNamespacedJob({ namespace: other })).items).toEqual([]);
    expect(await statusOf(kc.makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: other }))).toBe(403);
    const core = admin.makeApiClient(CoreV1Api);
    const accounts = (await core.listNamespacedServiceAccount({ namespace: other })).items.map((a) => a.metadata?.name);
    expect(accounts.sort()).toEqual(['tao-stage', 'tao-worker']);
  });
});

/** The first event of a watch on `apiPath` (a watch lists the existing objects as ADDED first), as [type, name]. */
async function firstWatchEvent(kc: KubeConfig, apiPath: string): Promise<[string, string | undefined]> {
  let onEvent!: (e: [string, string | undefined]) => void;
  let onEnd!: (err: unknown) => void;
  const first = new Promise<[string, string | undefined]>((resolve, reject) => {
    onEvent = resolve;
    onEnd = (err) => reject(err ?? new Error(`watch on ${apiPath} ended without an event`));
  });
  const started = new Watch(kc).watch(
    apiPath,
    {},
    (type, obj: KubernetesObject) => onEvent([type, obj.metadata?.name]),
    onEnd,
  );
  let timer: NodeJS.Timeout | undefined;
  try {
    await started; // rejects on a refused watch (403)
    return await Promise.race([
      first,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`no event on ${apiPath}`)), 10_000)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
    (await started.catch(() => undefined))?.abort();
  }
}
