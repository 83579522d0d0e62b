/**
 * The kubernetes executor against the real control plane of tests/global-setup.ts (etcd, kube-apiserver with
 * RBAC, the job controller, the scheduler, the garbage collector, kwok fake GPU nodes). Pods on fake nodes do
 * not execute: kwok runs them to Succeeded, or to Failed with an exit code when labelled for its chaos stage
 * (GPU scheduling, adoption, generations, many Jobs). What a kubelet really does (OOM kills, image pulls, logs,
 * SIGTERM) is tested on a real node in real-node-executor.test.ts.
 */
import {
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ContainerState,
  type V1ContainerStatus,
  type V1Job,
  type V1PodStatus,
} from '@kubernetes/client-node';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openStore } from '../../activities/artifacts/open-store.js';
import type { JobProgress, StageJob } from '../../activities/executors/executor.js';
import type { StageTemplate } from '../../activities/executors/kubernetes/job-template.js';
import { KubernetesExecutor } from '../../activities/executors/kubernetes/kubernetes-executor.js';
import { jobName } from '../../activities/job-name.js';
import { kubeconfigYaml, KWOK_FAIL_ANNOTATIONS, KWOK_FAIL_LABEL } from '../..//scripts/dev/k8s-dev.js';
import { fileRoot } from '../helpers/env.js';
import { adminKubeConfig, testNamespace } from '../helpers/k8s.js';

let kc: KubeConfig;
let batch: BatchV1Api;
let core: CoreV1Api;
const namespace = testNamespace('exec');
const executors: KubernetesExecutor[] = [];
const logRoot = fileRoot('k8s-executor');

beforeAll(async () => {
  kc = adminKubeConfig();
  batch = kc.makeApiClient(BatchV1Api);
  core = kc.makeApiClient(CoreV1Api);
});
afterAll(() => Promise.all(executors.map((e) => e.close())));

function executor(
  template: Partial<StageTemplate> = {},
  options: Partial<ConstructorParameters<typeof KubernetesExecutor>[0]> = {},
) {
  const ex = new KubernetesExecutor({
    kubeConfig: kc,
    config: { namespace, templates: { default: { image: 'tao-jobs:test', ...template } } },
    store: openStore({}),
    resyncMs: 500,
    ...options,
  });
  executors.push(ex);
  return ex;
}

/** kwok's chaos stage fails a Running pod with this exit code (after `delay`, e.g. "60s"). */
const failing = (exitCode: number, extra: Record<string, string> = {}): Partial<StageTemplate> => ({
  podLabels: { [KWOK_FAIL_LABEL]: 'true' },
  podAnnotations: { [KWOK_FAIL_ANNOTATIONS.exitCode]: String(exitCode), ...extra },
});

let n = 0;
function stageJob(over: Partial<StageJob> = {}): StageJob {
  const id = { workflowId: `tao/k8s-exec/t${++n}-${randomUUID().slice(0, 6)}`, round: 1, stage: 'generate', shard: 0 };
  return {
    name: jobName({ ...id, generation: 0 }),
    nameForGeneration: (generation) => jobName({ ...id, generation }),
    stage: 'generate',
    shard: 0,
    specUri: `${logRoot}/stage-spec.json`,
    logUri: `${logRoot}/logs/t${n}.log`,
    resources: { gpu: 1 },
    labels: { key: `k${n}` },
    owner: { workflowId: id.workflowId, runId: 'run-1', round: 1, key: `k${n}` },
    ...over,
  };
}

const context = (signal = new AbortController().signal, seen: JobProgress[] = []) => ({
  onProgress: (p: JobProgress) => seen.push(p),
  signal,
});

async function jobsOf(job: StageJob): Promise<V1Job[]> {
  const list = await batch.listNamespacedJob({ namespace, labelSelector: `tao.dev/spec-hash=${job.labels.key}` });
  return list.items;
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function nothingLeft(job: StageJob) {
  const pods = await core.listNamespacedPod({ namespace, labelSelector: `tao.dev/spec-hash=${job.labels.key}` });
  return (await jobsOf(job)).length + pods.items.length === 0;
}

/**
 * A node nobody plays the kubelet for: pods bound there stay as they are, and a test writes what a kubelet
 * would (container states, phase) through the status subresource. Deleted after the test file.
 */
const bareNodes: string[] = [];
async function bareNode(): Promise<string> {
  const name = `tao-bare-${randomUUID().slice(0, 6)}`;
  const capacity = { cpu: '8', memory: '32Gi', pods: '10', 'nvidia.com/gpu': '1' };
  await core.createNode({
    body: { metadata: { name, labels: { 'tao.dev/bare-node': name } }, status: { capacity, allocatable: capacity } },
  });
  bareNodes.push(name);
  return name;
}
afterAll(() => Promise.all(bareNodes.map((name) => core.deleteNode({ name }).catch(() => undefined))));

/** What a kubelet would write into a pod's status (merge patch of the status subresource). */
async function writePodStatus(pod: string, status: V1PodStatus) {
  await core.patchNamespacedPodStatus(
    { name: pod, namespace, body: { status } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}
const container = (state: V1ContainerState): V1ContainerStatus => ({
  name: 'stage',
  image: 'tao-jobs:test',
  imageID: '',
  ready: false,
  restartCount: 0,
  state,
});

/**
 * A TCP proxy in front of the apiserver (TLS passes through) whose connections a test can cut: `cut()` drops
 * every open connection and refuses new ones until `restore()`.
 */
async function cuttableProxy(target: string) {
  const sockets = new Set<net.Socket>();
  let open = true;
  const server = net.createServer((client) => {
    if (!open) return client.destroy();
    const upstream = net.connect(Number(target), '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: async () => {
      open = false;
      for (const s of sockets) s.destroy();
    },
    restore: () => {
      open = true;
    },
    close: () => {
      for (const s of sockets) s.destroy(); // close() alone waits for open connections (the watches) to end
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('kubernetes executor on a real control plane, kwok fake GPU nodes standing in for kubelets', () => {
  it('runs a GPU stage Job to completion through the job controller, the scheduler and a fake GPU node', async () => {
    const ex = executor();
    const seen: JobProgress[] = [];
    const job = stageJob();
    const outcome = await ex.run(job, context(undefined, seen));
    expect(outcome).toMatchObject({ exitCode: 0, jobName: job.name });
    expect(ex.created).toBe(1);
    expect(seen[0]).toMatchObject({ phase: 'starting', message: `created Job ${job.name}` });
    expect(seen.at(-1)).toMatchObject({ phase: 'succeeded', jobName: job.name });
    const [created] = await jobsOf(job);
    expect(created?.spec?.template.spec?.containers[0]?.resources?.limits).toMatchObject({ 'nvidia.com/gpu': '1' });
    expect(created?.metadata?.annotations).toMatchObject({ 'tao.dev/workflow-id': job.owner!.workflowId });
  });

  it('a new worker adopts the running Job instead of creating a second one, and records the adopting run and its log', async () => {
    const job = stageJob();
    // the first worker starts a Job that stays Running (kwok fails it only after 10 s) and is then shut down
    const first = executor({ ...failing(1, { [KWOK_FAIL_ANNOTATIONS.delay]: '10s' }), backoffLimit: 0 });
    const stop = new AbortController();
    const beats: JobProgress[] = [];
    const running = first.run(job, context(stop.signal, beats));
    // what the heartbeats carry while it runs: the phase, the Job's name and the pod summary
    await until('a heartbeat of the running pod', () => beats.some((b) => b.phase === 'running'));
    expect(beats.find((b) => b.phase === 'running')).toMatchObject({ jobName: job.name, podSummary: '1 Running' });
    stop.abort('worker-shutdown');
    expect(await running).toMatchObject({ exitCode: null, reason: 'stopped (worker-shutdown)' });
    expect(await jobsOf(job)).toHaveLength(1); // left for adoption

    const second = executor();
    const seen: JobProgress[] = [];
    const secondLog = job.logUri.replace(/\.log$/, '-run-2.log');
    const outcome = second.run(
      { ...job, owner: { ...job.owner!, runId: 'run-2' }, logUri: secondLog },
      context(undefined, seen),
    );
    await until('adoption', () => seen.length > 0);
    expect(seen[0]?.message).toBe(`adopted the existing Job ${job.name}`);
    expect(second.created).toBe(0);
    const [adopted] = await jobsOf(job);
    expect(adopted?.metadata?.annotations).toMatchObject({ 'tao.dev/run-id': 'run-2', 'tao.dev/log-uri': secondLog });
    // the adopted Job is the first worker's: it fails after its delay with exit 1, retryable
    expect(await outcome).toMatchObject({ exitCode: 1, failureType: 'StageFailed', jobName: job.name });
    expect(await jobsOf(job)).toHaveLength(1);
  });

  it('the generation moves on only after a Job failed: the retry creates generation 1, next to the failed one', async () => {
    const job = stageJob();
    const failed = await executor({ ...failing(3), backoffLimit: 0 }).run(job, context());
    expect(failed).toMatchObject({ exitCode: 3, failureType: 'StageFailed' });
    const retry = executor();
    const outcome = await retry.run(job, context());
    expect(outcome).toMatchObject({ exitCode: 0, jobName: job.nameForGeneration!(1) });
    expect(retry.created).toBe(1);
    const names = (await jobsOf(job)).map((j) => j.metadata?.name).sort();
    expect(names).toEqual([job.name, job.nameForGeneration!(1)].sort());
    // and a third run adopts the completed generation 1 instead of creating generation 2
    const again = executor();
    expect(await again.run(job, context())).toMatchObject({ exitCode: 0, jobName: job.nameForGeneration!(1) });
    expect(again.created).toBe(0);
  });

  it('a finished Job of another stage key under the same name is never adopted: the work runs under the next generation (issue 11, item 1)', async () => {
    // Before the key was in the name, rerunning a workflow id with a changed spec found the old spec's completed
    // Job under the same name, adopted it, and the stage failed "exited 0 but manifest not found", forever.
    const old = stageJob();
    expect(await executor().run(old, context())).toMatchObject({ exitCode: 0, jobName: old.name });
    const changed: StageJob = {
      ...old,
      labels: { key: `${old.labels.key}-changed` },
      owner: { ...old.owner!, key: `${old.owner!.key}-changed` },
    };
    const ex = executor();
    const outcome = await ex.run(changed, context());
    expect(outcome).toMatchObject({ exitCode: 0, jobName: old.nameForGeneration!(1) });
    expect(ex.created).toBe(1);
    const [mine] = await jobsOf(changed);
    expect(mine?.metadata?.annotations?.['tao.dev/key']).toBe(changed.owner!.key);
    // and the stage's own name carries its key: a changed spec is another Job name from the start
    const id = { workflowId: 'tao/x/round-1', round: 1, stage: 'generate', shard: 0, generation: 0 };
    expect(jobName({ ...id, key: 'k1' })).not.toBe(jobName({ ...id, key: 'k2' }));
  });

  it('a finished Job whose outputs were rejected (redo) is not adopted again: the next generation redoes the work', async () => {
    const job = stageJob();
    expect(await executor().run(job, context())).toMatchObject({ exitCode: 0, jobName: job.name });
    const ex = executor();
    expect(await ex.run({ ...job, redo: true }, context())).toMatchObject({
      exitCode: 0,
      jobName: job.nameForGeneration!(1),
    });
    expect(ex.created).toBe(1);
  });

  it.each([
    [64, 'InvalidStageSpec', 1],
    [65, 'ArtifactMissing', 1],
    [7, 'StageFailed', 2], // other exit codes: Kubernetes retries the pod (backoffLimit 1 here), then the Job fails
  ])('exit %i fails as %s after %i pod(s)', async (code, type, podCount) => {
    const job = stageJob();
    const ex = executor({ ...failing(code), backoffLimit: 1 });
    const outcome = await ex.run(job, context());
    expect(outcome).toMatchObject({ exitCode: code, failureType: type });
    const pods = await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job.name}` });
    expect(pods.items).toHaveLength(podCount);
  });

  it("a Job needing more GPUs than any node has is reported with the scheduler's reason, then deleted at the pending timeout", async () => {
    const ex = executor({}, { grace: { pendingMs: 1000, pendingTimeoutMs: 4000, imagePullMs: 60_000 } });
    const job = stageJob({ resources: { gpu: 100 } });
    const seen: JobProgress[] = [];
    const outcome = await ex.run(job, context(undefined, seen));
    const messages = seen.map((p) => p.message ?? '').join('\n');
    expect(messages).toMatch(/^Unschedulable: 0\/\d+ nodes are available: \d+ Insufficient nvidia.com\/gpu/m);
    expect(messages).toMatch(
      /^stuck Pending: Unschedulable: 0\/\d+ nodes are available: \d+ Insufficient nvidia.com\/gpu/m,
    );
    expect(outcome).toMatchObject({ exitCode: null, failureType: 'StageUnschedulable' });
    expect(outcome.reason).toMatch(/^Pending for \d+ min: Unschedulable: 0\/\d+ nodes are available/);
    await until('the abandoned Job and its pod to be gone', () => nothingLeft(job));
  });

  it('the shared watch reconnects after the connection to the apiserver is cut, and misses nothing that happened meanwhile', async () => {
    const proxy = await cuttableProxy(new URL(inject('k8sServer')).port);
    const through = new KubeConfig();
    through.loadFromString(kubeconfigYaml(`https://127.0.0.1:${proxy.port}`, kc.getCurrentUser()!.token!));
    const nodeName = await bareNode();
    const ex = new KubernetesExecutor({
      kubeConfig: through,
      config: {
        namespace,
        templates: { default: { image: 'tao-jobs:test', nodeSelector: { 'tao.dev/bare-node': nodeName } } },
      },
      store: openStore({}),
      resyncMs: 500,
    });
    executors.push(ex);
    const job = stageJob();
    const running = ex.run(job, context());
    await until('the pod to be bound to the bare node', () =>
      ex.watcher.podsOf(job.name).some((p) => p.spec?.nodeName === nodeName),
    );
    const starts = ex.watcher.stats.watchStarts;
    await proxy.cut(); // every open connection dropped, new ones refused
    // while the worker cannot see anything, the pod finishes (as its kubelet would report) and the job
    // controller completes the Job
    const finished = new Date();
    await writePodStatus(ex.watcher.podsOf(job.name)[0]!.metadata!.name!, {
      phase: 'Succeeded',
      containerStatuses: [
        container({ terminated: { exitCode: 0, reason: 'Completed', startedAt: finished, finishedAt: finished } }),
      ],
    });
    await until(
      'the Job to complete',
      async () =>
        !!(await jobsOf(job))[0]?.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'),
    );
    await new Promise((r) => setTimeout(r, 2000));
    proxy.restore();
    expect(await running).toMatchObject({ exitCode: 0, jobName: job.name });
    expect(ex.watcher.stats.watchStarts).toBeGreaterThan(starts);
    await ex.close();
    await proxy.close();
  });

  it('cancel deletes a Pending Job and a Running one with their pods', async () => {
    for (const [template, resources, phase] of [
      [{}, { gpu: 100 }, 'Pending'],
      [failing(1, { [KWOK_FAIL_ANNOTATIONS.delay]: '60s' }), { gpu: 1 }, 'Running'],
    ] as const) {
      const ex = executor(template);
      const job = stageJob({ resources });
      const abort = new AbortController();
      const running = ex.run(job, context(abort.signal));
      await until(`a ${phase} pod`, () => ex.watcher.podsOf(job.name).some((p) => p.status?.phase === phase));
      abort.abort('cancelled');
      expect(await running).toMatchObject({ exitCode: null, reason: 'stopped (cancelled)' });
      await until(`no Job and no pod left (${phase})`, () => nothingLeft(job));
    }
  });

  it('one executor watches 20 concurrent Jobs with two watches, not one poll loop per Job', async () => {
    const ex = executor();
    const jobs = Array.from({ length: 20 }, () => stageJob());
    const outcomes = await Promise.all(jobs.map((job) => ex.run(job, context())));
    expect(outcomes.every((o) => o.exitCode === 0)).toBe(true);
    expect(ex.created).toBe(20);
    expect(ex.watcher.stats.lists).toBe(2); // one list of Jobs and one of pods, then only watch events
    expect(ex.watcher.stats.events).toBeGreaterThanOrEqual(20 * 3);
  });

  it('streams nothing it cannot read: a fake node serves no logs, and the stage log says so', async () => {
    const job = stageJob();
    await executor().run(job, context());
    const log = fs.readFileSync(new URL(job.logUri), 'utf8');
    expect(log).toMatch(/^--- pod .+ ---\n\(no log from pod /);
  });
});
