/**
 * Whole rounds on Kubernetes: the round workflow on the real Temporal dev server, a worker with the
 * kubernetes executor acting with the worker ServiceAccount's own token (the Role from k8s/base, so these
 * tests also prove the Role is enough), the real job controller and scheduler of tests/global-setup.ts, and
 * a local node (tests/helpers/k8s-local-node.ts) that really executes the stage containers as local processes:
 * the scripted stand-in jobs (fast, scriptable failures) or the real tao_jobs package.
 */
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { labelValue } from '../../activities/executors/kubernetes/job-template.js';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RunSpecInput } from '../../common/run-spec.js';
import type { RoundProgress, RoundResult } from '../../common/types.js';
import { startLocalNode, type LocalNode } from '../helpers/k8s-local-node.js';
import { abortUpdate, progressQuery } from '../../workflows/messages.js';
import { JOBS_SRC } from '../../workers/config.js';
import { defaultDeps, kubernetesExecutorFromEnv } from '../../workers/create-worker.js';
import { fileRoot } from '../helpers/env.js';
import { adminKubeConfig } from '../helpers/k8s.js';
import { workerKubeConfig } from '../helpers/k8s-worker.js';
import { alive } from '../helpers/process.js';
import { scripted, SCRIPTED_JOBS, type Scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const namespace = `round-${randomUUID().slice(0, 8)}`;
const workDir = path.resolve('test-output', `local-node-${namespace}`);
let admin: KubeConfig;
let worker: KubeConfig;
let batch: BatchV1Api;
let node: LocalNode | undefined;

beforeAll(async () => {
  admin = adminKubeConfig();
  batch = admin.makeApiClient(BatchV1Api);
  worker = await workerKubeConfig(admin, namespace); // namespace, ServiceAccounts, Role, RoleBinding from k8s/base
});
afterEach(async () => {
  // nothing of one test may run into the next: delete its Jobs (Background: with their pods), then the node
  await batch.deleteCollectionNamespacedJob({ namespace, propagationPolicy: 'Background' });
  await node?.stop();
  node = undefined;
});
afterAll(async () => {
  await admin
    .makeApiClient(CoreV1Api)
    .deleteNamespace({ name: namespace })
    .catch(() => undefined);
});

/** The local node, running containers with the given package on PYTHONPATH (what the image would hold). */
async function localNode(env: Record<string, string>): Promise<LocalNode> {
  node = await startLocalNode({ kubeConfig: admin, python: inject('python'), workDir, env });
  return node;
}

const scriptedEnv = (s: Scripted) => ({
  PYTHONPATH: SCRIPTED_JOBS,
  PYTHONUNBUFFERED: '1',
  TAO_SCRIPT: s.scriptFile,
  TAO_LAUNCH_LOG: s.launchLog,
});

/** The worker's Kubernetes settings, as the kustomize ConfigMap would give them. */
const workerEnv = (n: LocalNode, extra: Record<string, string> = {}) => ({
  TAO_EXECUTOR_NAMESPACE: namespace,
  TAO_STAGE_IMAGE: 'tao-jobs:local',
  TAO_STAGE_NODE_SELECTOR: JSON.stringify(n.nodeSelector),
  ...extra,
});

const k8sSpec = (root: string, over: Partial<RunSpecInput> = {}) =>
  roundSpec(root, { executor: { type: 'kubernetes', heartbeatTimeoutSeconds: 10 }, ...over });

async function jobsOf(workflowId: string): Promise<V1Job[]> {
  const list = await batch.listNamespacedJob({
    namespace,
    labelSelector: `tao.dev/workflow=${labelValue(workflowId)}`,
  });
  return list.items;
}

const stageOf = (j: V1Job) =>
  `${j.metadata?.labels?.['tao.dev/stage']}${j.metadata?.labels?.['tao.dev/shard'] === 'none' ? '' : `[${j.metadata?.labels?.['tao.dev/shard']}]`}`;
const complete = (j: V1Job) => j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
const STAGES = ['dataset', 'evaluate', 'generate[0]', 'generate[1]', 'prepare', 'score[0]', 'score[1]', 'train'];

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('rounds whose stages run as Kubernetes Jobs on the local node stand-in kubelet (host processes, file:// store)', () => {
  it('every stage runs as a Job through the job controller on the node, with the worker Role only, and its log reaches the store', async () => {
    const s = scripted();
    const n = await localNode(scriptedEnv(s));
    const kubernetes = kubernetesExecutorFromEnv({ kubeConfig: worker }, workerEnv(n))!;
    const queue = uniqueQueue('k8s-round');
    const id = `tao/k8s-round/${queue}`;
    const { client, close } = await testClient();
    try {
      await withWorker(queue, { ...s.deps, executors: { kubernetes } }, async () => {
        const result = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: id,
          args: [k8sSpec(fileRoot('k8s-round'))],
        })) as RoundResult;
        expect(result.promoted).toBe(true);
      });
      const jobs = await jobsOf(id);
      expect(jobs.map(stageOf).sort()).toEqual(STAGES);
      expect(jobs.every(complete)).toBe(true);
      expect(kubernetes.created).toBe(8);
      // each Job's pod really ran on the local node, once
      expect(n.runs().filter((r) => r.namespace === namespace && r.exitCode === 0)).toHaveLength(8);
      expect(s.launches()).toHaveLength(8);
      // the train pod's output went through the apiserver's pods/log into the stage's log in the store
      const train = jobs.find((j) => stageOf(j) === 'train')!;
      const log = fs.readFileSync(new URL(train.metadata!.annotations!['tao.dev/log-uri']!), 'utf8');
      expect(log).toMatch(/^--- pod tao-k8s-round-.+ ---$/m);
      expect(log).toContain('"event": "progress", "stage": "train"');
    } finally {
      await kubernetes.close();
      await close();
    }
  });

  it("a Job that cannot be scheduled reaches the workflow with the scheduler's reason and waits for the operator", async () => {
    const s = scripted();
    const n = await localNode(scriptedEnv(s));
    const kubernetes = kubernetesExecutorFromEnv(
      { kubeConfig: worker },
      workerEnv(n, { TAO_PENDING_GRACE_SECONDS: '1', TAO_PENDING_TIMEOUT_SECONDS: '4' }),
    )!;
    const queue = uniqueQueue('k8s-pending');
    const id = `tao/k8s-pending/${queue}`;
    const { client, close } = await testClient();
    try {
      await withWorker(queue, { ...s.deps, executors: { kubernetes } }, async () => {
        const spec = k8sSpec(fileRoot('k8s-pending'), {
          executor: { type: 'kubernetes', heartbeatTimeoutSeconds: 10, resources: { train: { gpu: 100 } } },
        });
        const handle = await client.workflow.start(ROUND_WORKFLOW, { taskQueue: queue, workflowId: id, args: [spec] });
        let p: RoundProgress | undefined;
        await until('train to wait for the operator', async () => {
          p = await handle.query(progressQuery);
          return p.waiting.some((w) => w.stage === 'train');
        });
        expect(p!.waiting[0]).toMatchObject({ stage: 'train', type: 'StageUnschedulable' });
        expect(p!.waiting[0]!.reason).toMatch(
          /^Pending for \d+ min: Unschedulable: 0\/\d+ nodes are available: .*Insufficient nvidia.com\/gpu/,
        );
        // the stuck Job was deleted, so nothing holds a place in the queue while the operator decides
        await until('the train Job to be gone', async () => !(await jobsOf(id)).some((j) => stageOf(j) === 'train'));
        await handle.executeUpdate(abortUpdate, { args: [{ reason: 'no 100-GPU node in this cluster' }] });
        await expect(handle.result()).rejects.toThrow();
      });
    } finally {
      await kubernetes.close();
      await close();
    }
  });

  it('a stage failing with exit 65 reaches the operator with its termination message and the pod log tail', async () => {
    const s = scripted();
    s.setScript({ dataset: { exit: 65, reason: 'scores.jsonl line 3: not JSON' } });
    const n = await localNode(scriptedEnv(s));
    const kubernetes = kubernetesExecutorFromEnv({ kubeConfig: worker }, workerEnv(n))!;
    const queue = uniqueQueue('k8s-fail');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, { ...s.deps, executors: { kubernetes } }, async () => {
        const handle = await client.workflow.start(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/k8s-fail/${queue}`,
          args: [k8sSpec(fileRoot('k8s-fail'))],
        });
        let p: RoundProgress | undefined;
        await until('dataset to wait for the operator', async () => {
          p = await handle.query(progressQuery);
          return p.waiting.some((w) => w.stage === 'dataset');
        });
        // podFailurePolicy failed the Job at once (one pod), and the failure names the type, the termination
        // message the job wrote, and the last lines of its log as read through the apiserver
        expect(p!.waiting[0]).toMatchObject({
          stage: 'dataset',
          type: 'ArtifactMissing',
          reason: 'scores.jsonl line 3: not JSON',
        });
        expect(p!.waiting[0]!.logTail!.join('\n')).toContain('scripted failure in dataset');
        expect(s.launches().filter((l) => l.stage === 'dataset')).toHaveLength(1);
        await handle.executeUpdate(abortUpdate, { args: [{ reason: 'fixing the scorer' }] });
        await expect(handle.result()).rejects.toMatchObject({ cause: { message: 'fixing the scorer' } });
      });
    } finally {
      await kubernetes.close();
      await close();
    }
  });

  it('cancelling the round deletes the running Job: its pod goes and its process is killed', async () => {
    const s = scripted();
    s.setScript({ train: { steps: 60, sleep: 600 } }); // seconds
    const n = await localNode(scriptedEnv(s));
    const kubernetes = kubernetesExecutorFromEnv({ kubeConfig: worker }, workerEnv(n))!;
    const queue = uniqueQueue('k8s-cancel');
    const id = `tao/k8s-cancel/${queue}`;
    const { client, close } = await testClient();
    try {
      await withWorker(queue, { ...s.deps, executors: { kubernetes } }, async () => {
        const handle = await client.workflow.start(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: id,
          args: [k8sSpec(fileRoot('k8s-cancel'))],
        });
        await until('the train process to run', () => s.launches().some((l) => l.stage === 'train'));
        const pid = s.launches().find((l) => l.stage === 'train')!.pid;
        await handle.cancel();
        await expect(handle.result()).rejects.toThrow();
        await until('the train Job and its pod to be gone', async () => {
          const pods = await admin
            .makeApiClient(CoreV1Api)
            .listNamespacedPod({ namespace, labelSelector: `tao.dev/workflow=${labelValue(id)},tao.dev/stage=train` });
          return !(await jobsOf(id)).some((j) => stageOf(j) === 'train') && pods.items.length === 0;
        });
        expect(alive(pid)).toBe(false);
      });
    } finally {
      await kubernetes.close();
      await close();
    }
  });

  it('a worker killed mid-stage is replaced and the new one adopts the running Job: exactly one train Job, one train process', async () => {
    const s = scripted();
    s.setScript({ train: { steps: 20, sleep: 12 } }); // seconds
    const n = await localNode(scriptedEnv(s));
    const kubeconfig = path.join(workDir, `worker-${randomUUID().slice(0, 6)}.kubeconfig`);
    fs.writeFileSync(kubeconfig, worker.exportConfig(), { mode: 0o600 });
    const queue = uniqueQueue('k8s-crash');
    const id = `tao/k8s-crash/${queue}`;
    const log = path.resolve('test-output', `${queue}-workers.log`);
    const start = (): ChildProcess =>
      spawn(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', 'worker'], {
        stdio: ['ignore', fs.openSync(log, 'a'), fs.openSync(log, 'a')],
        env: {
          ...process.env,
          ...workerEnv(n),
          KUBECONFIG: kubeconfig,
          TEMPORAL_ADDRESS: inject('temporalAddress'),
          TAO_TASK_QUEUE: queue,
          TAO_JOBS_SRC: SCRIPTED_JOBS,
          TAO_PYTHON: inject('python'),
        },
      });
    const { client, close } = await testClient();
    const first = start();
    let second: ChildProcess | undefined;
    try {
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: id,
        args: [k8sSpec(fileRoot('k8s-crash'))],
      });
      await until('the train process to run', () => s.launches().some((l) => l.stage === 'train'));
      const pid = s.launches().find((l) => l.stage === 'train')!.pid;
      first.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 1000));
      expect(alive(pid)).toBe(true); // unlike a local job, the Job's pod does not die with the worker
      second = start();
      const result = (await handle.result()) as RoundResult;
      expect(result.promoted).toBe(true);
      const trainJobs = (await jobsOf(id)).filter((j) => stageOf(j) === 'train');
      expect(trainJobs).toHaveLength(1);
      expect(trainJobs[0]!.metadata?.annotations?.['tao.dev/run-id']).toBe(handle.firstExecutionRunId);
      expect(s.launches().filter((l) => l.stage === 'train')).toHaveLength(1);
      expect((await jobsOf(id)).map(stageOf).sort()).toEqual(STAGES);
    } finally {
      first.kill('SIGKILL');
      second?.kill('SIGTERM');
      await close();
    }
  });

  it('the real stage jobs (tiny model, sampling, scoring, DPO + LoRA, evaluation) run as Jobs on the node', async () => {
    const n = await localNode({
      PYTHONPATH: JOBS_SRC,
      PYTHONUNBUFFERED: '1',
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      TOKENIZERS_PARALLELISM: 'false',
    });
    const kubernetes = kubernetesExecutorFromEnv({ kubeConfig: worker }, workerEnv(n))!;
    const demo = JSON.parse(fs.readFileSync('examples/demo/round.json', 'utf8')) as RunSpecInput;
    const spec: RunSpecInput = {
      ...demo,
      name: 'k8s-e2e',
      executor: { type: 'kubernetes', resources: {} },
      artifacts: { uri: fileRoot('k8s-e2e') },
    };
    const queue = uniqueQueue('k8s-e2e');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, { ...defaultDeps(), executors: { kubernetes } }, async () => {
        const result = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/k8s-e2e/${queue}`,
          args: [spec],
        })) as RoundResult;
        expect(result.promoted).toBe(true);
        expect(result.evaluation.tuned.mean).toBeGreaterThan(result.evaluation.base.mean);
      });
      expect(kubernetes.created).toBe(8);
      expect(n.runs().filter((r) => r.namespace === namespace && r.exitCode === 0)).toHaveLength(8);
    } finally {
      await kubernetes.close();
      await close();
    }
  });
});
