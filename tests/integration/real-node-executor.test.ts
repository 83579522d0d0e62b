/**
 * The kubernetes executor against a real node: a kubelet with containerd, runc and CNI bridge networking
 * (scripts/dev/real-node.ts) joined to the test control plane. Images come from the local registry; pods are
 * pulled, started, logged, OOM-killed and stopped by the kubelet, and every status the executor classifies
 * is the kubelet's own. The stage is the probe image (tests/fixtures/real-node-probe): the container contract
 * without ML, told by its spec URI what to do.
 */
import {
  BatchV1Api,
  CoreV1Api,
  Watch,
  type KubeConfig,
  type V1ContainerStateTerminated,
  type V1Pod,
} from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../activities/artifacts/open-store.js';
import type { JobProgress, StageJob } from '../../activities/executors/executor.js';
import type { StageTemplate } from '../../activities/executors/kubernetes/job-template.js';
import { KubernetesExecutor } from '../../activities/executors/kubernetes/kubernetes-executor.js';
import { jobName } from '../../activities/job-name.js';
import { fileRoot } from '../helpers/env.js';
import { adminKubeConfig, testNamespace } from '../helpers/k8s.js';
import { useRealNode } from '../helpers/real-node.js';

const real = useRealNode(['probe']);
const namespace = testNamespace('real-node');
const logRoot = fileRoot('real-node-executor');
let kc: KubeConfig;
let batch: BatchV1Api;
let core: CoreV1Api;
const executors: KubernetesExecutor[] = [];

beforeAll(() => {
  kc = adminKubeConfig();
  batch = kc.makeApiClient(BatchV1Api);
  core = kc.makeApiClient(CoreV1Api);
});
afterAll(() => Promise.all(executors.map((e) => e.close())));
// every test leaves no Job, pod or running container behind, even when it failed half-way
afterEach(async () => {
  await batch.deleteCollectionNamespacedJob({ namespace, propagationPolicy: 'Background' }).catch(() => undefined);
  await until(
    'no pods left in the test namespace',
    async () => (await core.listNamespacedPod({ namespace })).items.length === 0,
    120_000,
  );
  await until('no container running on the node', async () => (await real().node.runningContainers()).length === 0);
}, 180_000);

function executor(
  template: Partial<StageTemplate> = {},
  options: Partial<ConstructorParameters<typeof KubernetesExecutor>[0]> = {},
) {
  const { node, images } = real();
  const ex = new KubernetesExecutor({
    kubeConfig: kc,
    config: {
      namespace,
      templates: { default: { image: images.probe!, cpu: '100m', memory: '128Mi', ...node.placement, ...template } },
    },
    store: openStore({}),
    resyncMs: 1000,
    ...options,
  });
  executors.push(ex);
  return ex;
}

let n = 0;
/** A stage job whose probe does what `query` says (see tests/fixtures/real-node-probe). */
function stageJob(query: string): StageJob {
  const id = { workflowId: `tao/real-node/t${++n}-${randomUUID().slice(0, 6)}`, round: 1, stage: 'generate', shard: 0 };
  return {
    name: jobName({ ...id, generation: 0 }),
    nameForGeneration: (generation) => jobName({ ...id, generation }),
    stage: 'generate',
    shard: 0,
    specUri: `probe:?${query}`,
    logUri: `${logRoot}/logs/t${n}.log`,
    resources: {},
    labels: { key: `k${n}` },
    owner: { workflowId: id.workflowId, runId: 'run-1', round: 1, key: `k${n}` },
  };
}

const context = (signal = new AbortController().signal, seen: JobProgress[] = []) => ({
  onProgress: (p: JobProgress) => seen.push(p),
  signal,
});

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const podsOfJob = async (name: string) =>
  (await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${name}` })).items;

/** Every pod status of one Job as the kubelet reports it, through a watch (a deleted pod's last state too). */
function watchPods(job: string) {
  const states: { pod: string; terminated?: V1ContainerStateTerminated; deletionTimestamp?: string }[] = [];
  let abort: { abort(): void } | undefined;
  const started = new Watch(kc)
    .watch(
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector: `batch.kubernetes.io/job-name=${job}` },
      (_type: string, pod: V1Pod) => {
        states.push({
          pod: pod.metadata?.name ?? '',
          terminated: pod.status?.containerStatuses?.[0]?.state?.terminated,
          deletionTimestamp: pod.metadata?.deletionTimestamp as unknown as string | undefined,
        });
      },
      () => undefined,
    )
    .then((req) => (abort = req));
  return { states, stop: async () => (await started, abort?.abort()) };
}

describe('kubernetes executor on a real node (kubelet + containerd + runc + CNI bridge)', () => {
  it('runs a stage Job to completion and streams its pod log through the apiserver', async () => {
    const job = stageJob('lines=3');
    const seen: JobProgress[] = [];
    const outcome = await executor().run(job, context(undefined, seen));
    expect(outcome).toMatchObject({ exitCode: 0, jobName: job.name });
    const log = fs.readFileSync(new URL(job.logUri), 'utf8');
    expect(log).toMatch(/^--- pod .+ ---$/m);
    expect(log).toContain('probe log line 3 of 3');
    expect(log).not.toContain('(no log from pod');
    const [pod] = await podsOfJob(job.name);
    // a real kubelet ran it: the node, the pod IP on the CNI bridge, the image as containerd resolved it
    expect(pod?.spec?.nodeName).toBe(real().node.name);
    expect(pod?.status?.podIP).toMatch(/^10\.88\./);
    expect(pod?.status?.containerStatuses?.[0]?.imageID).toMatch(/@sha256:[0-9a-f]{64}$/);
    expect(pod?.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
  });

  it('a container over its memory limit is OOMKilled by the kernel and fails as StageOutOfMemory', async () => {
    const job = stageJob('alloc_mb=400&sleep=5');
    const outcome = await executor({ memory: '64Mi', backoffLimit: 0 }).run(job, context());
    expect(outcome).toMatchObject({ exitCode: 137, failureType: 'StageOutOfMemory' });
    expect(outcome.reason).toMatch(/^OOMKilled/);
    const [pod] = await podsOfJob(job.name);
    expect(pod?.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 137,
      reason: 'OOMKilled',
    });
  });

  it('an image tag missing from the registry goes through ImagePullBackOff to InvalidImage, and the Job is deleted', async () => {
    const missing = `${real().images.probe!.replace(/:[^:]+$/, '')}:no-such-tag`;
    const ex = executor(
      { image: missing },
      { grace: { pendingMs: 60_000, pendingTimeoutMs: 300_000, imagePullMs: 25_000 } },
    );
    const job = stageJob('lines=1');
    const seen: JobProgress[] = [];
    const outcome = await ex.run(job, context(undefined, seen));
    const messages = seen.map((p) => p.message ?? '').join('\n');
    expect(messages).toMatch(/ErrImagePull/);
    expect(messages).toMatch(/ImagePullBackOff: Back-off pulling image "[^"]+:no-such-tag"/);
    expect(outcome).toMatchObject({ exitCode: null, failureType: 'InvalidImage' });
    expect(outcome.reason).toMatch(/^(ImagePullBackOff|ErrImagePull): /);
    await until(
      'the Job to be deleted',
      async () =>
        (await batch.listNamespacedJob({ namespace, labelSelector: `tao.dev/spec-hash=${job.labels.key}` })).items
          .length === 0,
    );
  });

  it('cancel sends SIGTERM, lets the stage finish within the grace period, and leaves no pod or container', async () => {
    const { node } = real();
    const ex = executor();
    const job = stageJob('lines=1&sleep=300&term_delay=3&term_exit=42');
    const abort = new AbortController();
    const seen: JobProgress[] = [];
    const running = ex.run(job, context(abort.signal, seen));
    await until('the probe to run', () => seen.some((p) => p.phase === 'running'), 120_000);
    const pods = watchPods(job.name);
    const before = await node.runningContainers();
    expect(before.length).toBeGreaterThanOrEqual(2); // the pod's sandbox and its stage container
    const cancelledAt = Date.now();
    abort.abort('cancelled');
    expect(await running).toMatchObject({ exitCode: null, reason: 'stopped (cancelled)' });
    // still running 1.5 s later: in its SIGTERM handler, not killed
    await new Promise((r) => setTimeout(r, 1500));
    expect((await node.runningContainers()).filter((id) => before.includes(id)).length).toBeGreaterThan(0);
    await until('no pod of the Job left', async () => (await podsOfJob(job.name)).length === 0, 90_000);
    await until('no container of the pod left running', async () =>
      (await node.runningContainers()).every((id) => !before.includes(id)),
    );
    await pods.stop();
    // the kubelet's last word on the container: it exited by itself with the handler's code after the delay
    const last = pods.states.filter((s) => s.terminated).at(-1)?.terminated;
    expect(last).toMatchObject({ exitCode: 42 });
    // (finishedAt has whole seconds: the 3 s in the handler show as at least 2)
    expect(new Date(last!.finishedAt!).getTime() - cancelledAt).toBeGreaterThanOrEqual(2000);
    expect(pods.states.some((s) => s.deletionTimestamp)).toBe(true);
  });

  it("the stage's termination message is the failure reason, with the last lines of the pod's log", async () => {
    const job = stageJob(`exit=3&reason=${encodeURIComponent('shard 7: tokenizer file is truncated')}`);
    const outcome = await executor({ backoffLimit: 0 }).run(job, context());
    expect(outcome).toMatchObject({ exitCode: 3, failureType: 'StageFailed' });
    expect(outcome.reason).toContain('shard 7: tokenizer file is truncated');
    // the log tail the operator desk shows beside the reason, read through the apiserver
    expect(outcome.logTail.join('\n')).toContain('probe: failing with exit 3');
    const [pod] = await podsOfJob(job.name);
    expect(pod?.status?.containerStatuses?.[0]?.state?.terminated?.message).toBe(
      'shard 7: tokenizer file is truncated',
    );
  });

  it.each([
    [64, 'InvalidStageSpec'],
    [65, 'ArtifactMissing'],
  ])('exit %i fails the Job at once through podFailurePolicy (%s), no pod retried', async (code, type) => {
    const job = stageJob(`exit=${code}&reason=${encodeURIComponent(`contract exit ${code}`)}`);
    const outcome = await executor({ backoffLimit: 3 }).run(job, context());
    expect(outcome).toMatchObject({ exitCode: code, failureType: type, reason: `contract exit ${code}` });
    expect(await podsOfJob(job.name)).toHaveLength(1);
    const failed = (await batch.readNamespacedJob({ name: job.name, namespace })).status?.conditions?.find(
      (c) => c.type === 'Failed' && c.status === 'True',
    );
    expect(failed?.reason).toBe('PodFailurePolicy');
  });

  it('other exit codes are retried by Kubernetes up to backoffLimit (new pods), then fail as StageFailed', async () => {
    const job = stageJob('exit=7');
    const outcome = await executor({ backoffLimit: 1 }).run(job, context());
    expect(outcome).toMatchObject({ exitCode: 7, failureType: 'StageFailed' });
    expect(await podsOfJob(job.name)).toHaveLength(2);
  });
});
