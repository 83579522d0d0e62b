/**
 * Multi-node training as one Kubernetes object (docs/design.md#rule-14), against the real control plane of
 * tests/global-setup.ts: the Indexed Job and headless Service built by job-template.ts go through the real
 * apiserver validation, the job controller (indexes, hostnames, JOB_COMPLETION_INDEX, success), the scheduler
 * (GPU requests on the kwok fake GPU nodes) and the garbage collector (the Service goes with its owner Job).
 * Pods on fake nodes do not execute, so torchrun itself is not run here: there is no DNS and no container.
 */
import { BatchV1Api, CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { StageJob } from '../../activities/executors/executor.js';
import {
  buildJob,
  buildService,
  withOwner,
  type JobIdentity,
  type StageTemplate,
} from '../../activities/executors/kubernetes/job-template.js';
import { jobName } from '../../activities/job-name.js';
import { waitUntil } from '../..//scripts/dev/processes.js';
import { GPU_NODE_LABEL } from '../..//scripts/dev/k8s-dev.js';
import { adminKubeConfig, testNamespace } from '../helpers/k8s.js';

let kc: KubeConfig;
let batch: BatchV1Api;
let core: CoreV1Api;
const suffix = randomUUID().slice(0, 8);
const namespace = testNamespace('indexed');
const workflowId = `tao/indexed-${suffix}/round-1`;
const template: StageTemplate = {
  image: 'tao-jobs:test',
  nodeSelector: { [GPU_NODE_LABEL.key]: GPU_NODE_LABEL.value },
};
const identity: JobIdentity = { namespace, workflowId, runId: 'run-1', round: 1, key: 'k1' };

function trainJob(nodes: number, name = jobName({ workflowId, round: 1, stage: 'train', shard: null, generation: 0 })) {
  return {
    name,
    stage: 'train',
    shard: null,
    specUri: 's3://tao/runs/stages/train/k1/stage-spec.json',
    logUri: 's3://tao/runs/stages/train/k1/logs/attempt-1.log',
    resources: { gpu: 1, nodes },
    labels: { key: 'k1' },
  } satisfies StageJob;
}

beforeAll(async () => {
  kc = adminKubeConfig();
  batch = kc.makeApiClient(BatchV1Api);
  core = kc.makeApiClient(CoreV1Api);
});

const gone = (e: unknown) => (e as { code?: number }).code === 404;

describe('multi-node train: an Indexed Job with a headless Service on the real control plane, kwok fake GPU nodes standing in for GPU kubelets', () => {
  it('runs 2 nodes × 1 GPU as one Job whose pods are <job>-0 and <job>-1 under the Service; deleting the Job deletes the Service', async () => {
    const stage = trainJob(2);
    const name = stage.name;
    // every state of every pod of the Job: with succeededIndexes "0" the controller may remove pod 1 early
    const pods = new Map<string, V1Pod>();
    const watch = await new Watch(kc).watch(
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector: `batch.kubernetes.io/job-name=${name}` },
      (_type, pod: V1Pod) => {
        const seen = pods.get(pod.metadata!.name!);
        pods.set(pod.metadata!.name!, {
          ...pod,
          spec: { ...pod.spec!, nodeName: pod.spec?.nodeName ?? seen?.spec?.nodeName },
        });
      },
      () => undefined,
    );
    try {
      // the executor's order: the Job, then its Service owned by the created Job
      const created = await batch.createNamespacedJob({ namespace, body: buildJob(stage, identity, template) });
      expect(created.metadata!.uid).toBeTruthy();
      const service = await core.createNamespacedService({
        namespace,
        body: withOwner(buildService(stage, identity, template)!, created),
      });

      // what the apiserver stored
      expect(created.spec).toMatchObject({
        completionMode: 'Indexed',
        completions: 2,
        parallelism: 2,
        backoffLimit: 4,
        successPolicy: { rules: [{ succeededIndexes: '0' }] },
      });
      expect(created.spec!.podFailurePolicy!.rules).toHaveLength(2);
      expect(created.spec!.template.spec!.subdomain).toBe(name);
      expect(service.metadata!.name).toBe(name);
      expect(service.spec).toMatchObject({
        clusterIP: 'None',
        selector: { 'batch.kubernetes.io/job-name': name },
        publishNotReadyAddresses: true,
      });
      expect(service.metadata!.ownerReferences).toEqual([
        { apiVersion: 'batch/v1', kind: 'Job', name, uid: created.metadata!.uid },
      ]);
      expect(service.metadata!.labels).toEqual(created.metadata!.labels);

      await waitUntil(
        `Job ${name} Complete`,
        async () => {
          const j = await batch.readNamespacedJob({ name, namespace });
          return !!j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
        },
        60_000,
      );
      const done = await batch.readNamespacedJob({ name, namespace });
      expect(done.status!.completedIndexes).toMatch(/^0/);

      // one pod per index (kwok never fails them, so no replacements)
      await waitUntil(
        'both pods scheduled',
        async () => [...pods.values()].filter((p) => p.spec?.nodeName).length === 2,
      );
      const byIndex = [...pods.values()].sort((a, b) =>
        a.metadata!.annotations!['batch.kubernetes.io/job-completion-index']!.localeCompare(
          b.metadata!.annotations!['batch.kubernetes.io/job-completion-index']!,
        ),
      );
      expect(byIndex).toHaveLength(2);
      byIndex.forEach((pod, index) => {
        expect(pod.metadata!.annotations!['batch.kubernetes.io/job-completion-index']).toBe(String(index));
        expect(pod.spec!.hostname).toBe(`${name}-${index}`);
        expect(pod.spec!.hostname!.length).toBeLessThanOrEqual(63);
        expect(pod.spec!.subdomain).toBe(name);
        const c = pod.spec!.containers[0]!;
        // the job controller injects the index (from the pod's label in 1.36, from its annotation before)
        const env = c.env!.find((e) => e.name === 'JOB_COMPLETION_INDEX');
        const path = env?.valueFrom?.fieldRef?.fieldPath;
        expect(path).toMatch(/^metadata\.(labels|annotations)\['batch\.kubernetes\.io\/job-completion-index'\]$/);
        const from = path!.startsWith('metadata.labels') ? pod.metadata!.labels : pod.metadata!.annotations;
        expect(from!['batch.kubernetes.io/job-completion-index']).toBe(String(index));
        expect(c.command).toEqual(['python', '-m', 'tao_jobs.torchrun']);
        expect(c.resources!.limits).toEqual({ 'nvidia.com/gpu': '1' });
        expect(['tao-gpu-0', 'tao-gpu-1']).toContain(pod.spec!.nodeName);
        // the Service's selector picks exactly the Job's pods
        expect(pod.metadata!.labels!['batch.kubernetes.io/job-name']).toBe(name);
      });

      // deleting the Job (as the executor does on cancel, and the reaper) takes the Service and the pods with it
      await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
      await waitUntil(
        `Service ${name} deleted by the garbage collector`,
        () => core.readNamespacedService({ name, namespace }).then(() => false, gone),
        60_000,
      );
      await waitUntil(
        'the Job and its pods deleted',
        async () =>
          (await batch.readNamespacedJob({ name, namespace }).then(() => false, gone)) &&
          (await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` })).items
            .length === 0,
        60_000,
      );
    } finally {
      watch.abort();
    }
  });

  it('the apiserver agrees with the name-length check: <name>-<last index> must be a DNS label ≤ 63', async () => {
    const base = trainJob(2, `tao-${'a'.repeat(46)}-0123456789`); // 61 characters: hostnames up to 63
    expect(base.name).toHaveLength(61);
    const ok = buildJob(base, identity, template);
    await batch.createNamespacedJob({ namespace, body: ok, dryRun: 'All' });
    expect(() => buildJob({ ...base, name: `${base.name}b` }, identity, template)).toThrow(/too long for 2 nodes/);
    // the same Job one character longer, bypassing buildJob's check: refused by the apiserver too
    const tooLong = { ...ok, metadata: { ...ok.metadata, name: `${base.name}b` } };
    const refused = await batch.createNamespacedJob({ namespace, body: tooLong, dryRun: 'All' }).then(
      () => undefined,
      (e: { code?: number; body?: string }) => e,
    );
    expect(refused?.code).toBe(422);
    expect(String(refused?.body)).toContain('will not able to create pod with invalid DNS label');
  });
});
