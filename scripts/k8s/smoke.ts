/**
 * Smoke check of the Docker-free Kubernetes dev control plane (scripts/dev/k8s-dev.ts): starts it in a temp
 * dir and checks, for real, that
 *   (a) a batch/v1 Job requesting nvidia.com/gpu: 1 runs to Complete (job controller + scheduler + kwok);
 *   (b) a Job requesting nvidia.com/gpu: 100 stays Pending, its pod PodScheduled=False/Unschedulable with a
 *       message naming nvidia.com/gpu;
 *   (c) a pod labelled for kwok's chaos stage ends Failed with the exit code from its annotation, and a Job
 *       whose pod fails that way with a podFailurePolicy on that exit code fails at once (reason
 *       PodFailurePolicy);
 *   (d) server-side dry-run (dryRun: 'All') of a Job succeeds without creating it, and of an invalid Job is
 *       rejected with 422;
 *   (e) RBAC is enforced: a user with no bindings gets 403, and is allowed once a Role/RoleBinding exists.
 *
 *   node --import tsx scripts/k8s/smoke.ts [--base-port 26400] [--keep]
 */
import {
  BatchV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  VersionApi,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { waitUntil } from '../dev/processes.js';
import {
  GPU_NODE_LABEL,
  KWOK_FAIL_ANNOTATIONS,
  KWOK_FAIL_LABEL,
  RESTRICTED_USER,
  startK8sDev,
  tempK8sDir,
} from '../dev/k8s-dev.js';

const { values } = parseArgs({
  options: { 'base-port': { type: 'string', default: '26400' }, keep: { type: 'boolean', default: false } },
});
const NS = 'default';
const results: { name: string; ok: boolean; ms: number; detail: string }[] = [];

function job(
  name: string,
  gpus: number,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: NS, labels: { app: 'tao-smoke' } },
    spec: {
      backoffLimit: 0,
      ttlSecondsAfterFinished: 600,
      template: {
        metadata: { labels: { app: 'tao-smoke', ...extra.labels }, annotations: extra.annotations },
        spec: {
          restartPolicy: 'Never',
          nodeSelector: { [GPU_NODE_LABEL.key]: GPU_NODE_LABEL.value },
          tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
          containers: [
            {
              name: 'stage',
              image: 'tao/stage:dev',
              command: ['python', '-m', 'tao_jobs', 'generate', '--spec', 'file:///tmp/spec.json'],
              resources: {
                requests: { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': String(gpus) },
                limits: { 'nvidia.com/gpu': String(gpus) },
              },
            },
          ],
        },
      },
    },
  };
}

async function check(name: string, fn: () => Promise<string>) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true, ms: Date.now() - t0, detail });
    console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)${detail ? `: ${detail}` : ''}`);
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    results.push({ name, ok: false, ms: Date.now() - t0, detail });
    console.log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s): ${detail}`);
  }
}

const root = tempK8sDir();
const dir = path.join(root, 'cp');
const t0 = Date.now();
let cp: Awaited<ReturnType<typeof startK8sDev>> | undefined;
try {
  cp = await startK8sDev({ dir, basePort: Number(values['base-port']) });
  console.log(
    `control plane up in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${cp.server} (kubeconfig ${cp.kubeconfigPath})`,
  );
  const batch = cp.kubeConfig.makeApiClient(BatchV1Api);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const version = await cp.kubeConfig.makeApiClient(VersionApi).getCode();
  console.log(`server version ${version.gitVersion} (major ${version.major}, minor ${version.minor})`);
  const podsOf = async (jobName: string): Promise<V1Pod[]> =>
    (await core.listNamespacedPod({ namespace: NS, labelSelector: `batch.kubernetes.io/job-name=${jobName}` })).items;

  await check('(a) GPU Job (nvidia.com/gpu: 1) runs to Complete', async () => {
    await batch.createNamespacedJob({ namespace: NS, body: job('smoke-gpu-1', 1) });
    let done: V1Job | undefined;
    await waitUntil(
      'Job smoke-gpu-1 Complete',
      async () => {
        const j = await batch.readNamespacedJob({ name: 'smoke-gpu-1', namespace: NS });
        if (j.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True'))
          throw new Error('Job failed');
        done = j;
        return !!j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
      },
      120_000,
    );
    const pods = await podsOf('smoke-gpu-1');
    return `succeeded=${done?.status?.succeeded}, pod ${pods[0]?.metadata?.name} on node ${pods[0]?.spec?.nodeName} phase ${pods[0]?.status?.phase}`;
  });

  await check('(b) Job asking nvidia.com/gpu: 100 stays Pending/Unschedulable', async () => {
    await batch.createNamespacedJob({ namespace: NS, body: job('smoke-gpu-100', 100) });
    let message = '';
    await waitUntil(
      'pod of smoke-gpu-100 Unschedulable',
      async () => {
        const pod = (await podsOf('smoke-gpu-100'))[0];
        const c = pod?.status?.conditions?.find((x) => x.type === 'PodScheduled');
        if (c?.status === 'False' && c.reason === 'Unschedulable') {
          message = c.message ?? '';
          return pod?.status?.phase === 'Pending';
        }
        return false;
      },
      60_000,
    );
    if (!message.includes('nvidia.com/gpu')) throw new Error(`message does not name nvidia.com/gpu: ${message}`);
    await new Promise((r) => setTimeout(r, 3000));
    const j = await batch.readNamespacedJob({ name: 'smoke-gpu-100', namespace: NS });
    if (j.status?.conditions?.some((c) => c.status === 'True')) throw new Error('Job finished unexpectedly');
    return `active=${j.status?.active ?? 0}; scheduler message: "${message}"`;
  });

  await check('(c) chaos-labelled pod ends Failed with the annotated exit code', async () => {
    const exitCode = 65;
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'smoke-chaos',
          labels: { [KWOK_FAIL_LABEL]: 'true' },
          annotations: {
            [KWOK_FAIL_ANNOTATIONS.exitCode]: String(exitCode),
            [KWOK_FAIL_ANNOTATIONS.reason]: 'Error',
            [KWOK_FAIL_ANNOTATIONS.message]: 'bad input',
          },
        },
        spec: {
          restartPolicy: 'Never',
          nodeSelector: { [GPU_NODE_LABEL.key]: GPU_NODE_LABEL.value },
          containers: [{ name: 'stage', image: 'tao/stage:dev', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
        },
      },
    });
    let pod: V1Pod | undefined;
    await waitUntil(
      'pod smoke-chaos Failed',
      async () => {
        pod = await core.readNamespacedPod({ name: 'smoke-chaos', namespace: NS });
        return pod.status?.phase === 'Failed';
      },
      60_000,
    );
    const term = pod?.status?.containerStatuses?.[0]?.state?.terminated;
    if (term?.exitCode !== exitCode) throw new Error(`exit code ${term?.exitCode}, expected ${exitCode}`);
    // And through a Job with a podFailurePolicy on that exit code (how an executor makes 64/65 non-retryable).
    const failing = job('smoke-chaos-job', 1, {
      labels: { [KWOK_FAIL_LABEL]: 'true' },
      annotations: { [KWOK_FAIL_ANNOTATIONS.exitCode]: String(exitCode) },
    });
    failing.spec!.backoffLimit = 3;
    failing.spec!.podFailurePolicy = {
      rules: [{ action: 'FailJob', onExitCodes: { containerName: 'stage', operator: 'In', values: [64, 65] } }],
    };
    await batch.createNamespacedJob({ namespace: NS, body: failing });
    let reason = '';
    await waitUntil(
      'Job smoke-chaos-job Failed',
      async () => {
        const j = await batch.readNamespacedJob({ name: 'smoke-chaos-job', namespace: NS });
        const c = j.status?.conditions?.find((x) => x.type === 'Failed' && x.status === 'True');
        reason = c ? `${c.reason}: ${c.message}` : '';
        return !!c;
      },
      60_000,
    );
    if (!reason.startsWith('PodFailurePolicy')) throw new Error(`Job failed with ${reason}, expected PodFailurePolicy`);
    return `pod terminated exitCode=${term.exitCode} reason=${term.reason} message=${term.message}; Job Failed "${reason}"`;
  });

  await check("(d) server-side dry-run (dryRun: 'All') of a Job", async () => {
    const res = await batch.createNamespacedJob({ namespace: NS, body: job('smoke-dry-run', 1), dryRun: 'All' });
    const exists = await batch
      .readNamespacedJob({ name: 'smoke-dry-run', namespace: NS })
      .then(() => true)
      .catch((e: { code?: number }) => (e.code === 404 ? false : Promise.reject(e)));
    if (exists) throw new Error('dry-run created the Job');
    const bad = job('smoke-dry-run-bad', 1);
    bad.spec!.template.spec!.containers[0]!.resources = { requests: { 'nvidia.com/gpu': '1' }, limits: {} };
    const rejected = await batch
      .createNamespacedJob({ namespace: NS, body: bad, dryRun: 'All' })
      .then(() => '')
      .catch((e: { code?: number; body?: string }) => `${e.code}: ${String(e.body).slice(0, 300)}`);
    if (!rejected.startsWith('422')) throw new Error(`invalid Job not rejected with 422 (${rejected || 'accepted'})`);
    return `valid Job accepted (uid ${res.metadata?.uid ?? '-'}; not persisted); invalid Job (GPU request without limit) rejected ${rejected.slice(0, 200)}`;
  });

  await check('(e) RBAC is enforced (restricted user: 403, then allowed by a RoleBinding)', async () => {
    const restricted = cp!.restrictedKubeConfig.makeApiClient(BatchV1Api);
    const denied = await restricted
      .createNamespacedJob({ namespace: NS, body: job('smoke-rbac', 1), dryRun: 'All' })
      .then(() => 0)
      .catch((e: { code?: number }) => e.code ?? -1);
    if (denied !== 403) throw new Error(`expected 403 before the binding, got ${denied}`);
    const rbac = cp!.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: 'tao-executor' },
        rules: [{ apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get', 'list', 'watch', 'delete'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: 'tao-executor' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tao-executor' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: RESTRICTED_USER }],
      },
    });
    let allowed = false;
    await waitUntil(
      'RoleBinding effective',
      async () => {
        await restricted.createNamespacedJob({ namespace: NS, body: job('smoke-rbac', 1), dryRun: 'All' });
        return (allowed = true);
      },
      30_000,
    );
    return `403 without a binding; allowed=${allowed} after Role/RoleBinding tao-executor`;
  });
} catch (e) {
  results.push({ name: 'control plane start', ok: false, ms: Date.now() - t0, detail: String(e) });
  console.log(`FAIL control plane start: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  await cp?.stop();
  if (values.keep || results.some((r) => !r.ok)) console.log(`logs kept in ${dir}`);
  else fs.rmSync(root, { recursive: true, force: true });
}
const failed = results.filter((r) => !r.ok).length;
console.log(
  `${failed ? 'FAIL' : 'PASS'}: ${results.length - failed}/${results.length} checks, ${((Date.now() - t0) / 1000).toFixed(1)}s total`,
);
process.exit(failed ? 1 : 0);
