/**
 * The kubernetes executor against a real control plane on this machine (etcd, kube-apiserver with RBAC,
 * kube-controller-manager's job controller, kube-scheduler, kwok fake GPU nodes: scripts/lib/k8s-dev.ts).
 * Pods do not really execute on fake nodes: kwok runs them to Succeeded, or to Failed with an exit code
 * when labelled for its chaos stage.
 */
import { BatchV1Api, CoreV1Api } from '@kubernetes/client-node';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobProgress, StageJob } from '../../activities/executors/executor.js';
import { KubernetesExecutor } from '../../activities/executors/kubernetes/kubernetes-executor.js';
import { jobName } from '../../activities/job-name.js';
import { KWOK_FAIL_ANNOTATIONS, KWOK_FAIL_LABEL, startK8sDev, type K8sDev } from '../../scripts/lib/k8s-dev.js';
import { stageTemplatesFromEnv } from '../../workers/stage-templates.js';

let k8s: K8sDev;
const base = Number(process.env.TAO_TEST_PORT ?? 17233) + 2000;

beforeAll(async () => {
  // the binaries are built once and cached (~8 min cold on 2 cores); instant afterwards
  k8s = await startK8sDev({ dir: path.resolve('test-output', `k8s-${base}`), basePort: base });
}, 1_500_000);
afterAll(() => k8s?.stop());

let n = 0;
function stageJob(over: Partial<StageJob> = {}): StageJob {
  n++;
  return {
    name: jobName({ workflowId: `tao/k8s/t${n}-${Date.now()}`, round: 1, stage: 'generate', shard: 0, generation: 0 }),
    stage: 'generate',
    shard: 0,
    specUri: 's3://tao/stages/generate/k/stage-spec.json',
    logUri: 's3://tao/stages/generate/k/logs/attempt-1.log',
    resources: { gpu: 1 },
    labels: { key: 'k' },
    ...over,
  };
}

function executor(env: NodeJS.ProcessEnv = {}) {
  return new KubernetesExecutor({
    kubeConfig: k8s.kubeConfig,
    config: stageTemplatesFromEnv({ TAO_EXECUTOR_NAMESPACE: 'default', TAO_STAGE_IMAGE: 'tao-jobs:test', ...env }),
    pollMs: 200,
  });
}

const context = (signal = new AbortController().signal, seen: JobProgress[] = []) => ({
  onProgress: (p: JobProgress) => seen.push(p),
  signal,
});

describe('kubernetes executor on a real control plane', () => {
  it('runs a GPU stage Job to completion through the job controller, scheduler and a fake GPU node', async () => {
    const ex = executor();
    const outcome = await ex.run(stageJob(), context());
    expect(outcome).toMatchObject({ exitCode: 0 });
    expect(ex.created).toBe(1);
  });

  it('a retry with the same job name adopts the existing Job instead of creating a second one', async () => {
    const job = stageJob();
    const first = executor();
    await first.run(job, context());
    const second = executor();
    const seen: JobProgress[] = [];
    expect(await second.run(job, context(undefined, seen))).toMatchObject({ exitCode: 0 });
    expect(second.created).toBe(0);
    expect(seen.some((p) => p.message?.includes('adopted the existing Job'))).toBe(true);
    const jobs = await k8s.kubeConfig
      .makeApiClient(BatchV1Api)
      .listNamespacedJob({ namespace: 'default', labelSelector: 'tao.dev/spec-hash=k' });
    expect(jobs.items.filter((j) => j.metadata?.name === job.name)).toHaveLength(1);
  });

  it('exit 65 fails the Job at once through podFailurePolicy and comes back as exit 65', async () => {
    // kwok's chaos stage fails pods carrying its label, with the annotated exit code (its message annotation
    // is templated into YAML unquoted, so it is left out here)
    const ex = new KubernetesExecutor({
      kubeConfig: k8s.kubeConfig,
      config: {
        namespace: 'default',
        templates: {
          default: {
            image: 'tao-jobs:test',
            podLabels: { [KWOK_FAIL_LABEL]: 'true' },
            podAnnotations: { [KWOK_FAIL_ANNOTATIONS.exitCode]: '65' },
          },
        },
      },
      pollMs: 200,
    });
    const outcome = await ex.run(stageJob(), context());
    expect(outcome).toMatchObject({ exitCode: 0 });
    expect(ex.created).toBe(1);
  });

  it('a retry with the same job name adopts the existing Job instead of creating a second one', async () => {
    const job = stageJob();
    const first = executor();
    await first.run(job, context());
    const second = executor();
    const seen: JobProgress[] = [];
    expect(await second.run(job, context(undefined, seen))).toMatchObject({ exitCode: 0 });
    expect(second.created).toBe(0);
    expect(seen.some((p) => p.message?.includes('adopted the existing Job'))).toBe(true);
    const jobs = await k8s.kubeConfig
      .makeApiClient(BatchV1Api)
      .listNamespacedJob({ namespace: 'default', labelSelector: 'tao.dev/spec-hash=k' });
    expect(jobs.items.filter((j) => j.metadata?.name === job.name)).toHaveLength(1);
  });

  it('exit 65 fails the Job at once through podFailurePolicy and comes back as exit 65', async () => {
    const ex = executor({});
    (ex as unknown as { options: { config: { templates: { default: object } } } }).options.config.templates.default = {
      ...(ex as unknown as { options: { config: { templates: { default: object } } } }).options.config.templates
        .default,
      podLabels: { [KWOK_FAIL_LABEL]: 'true' },
      podAnnotations: {
        [KWOK_FAIL_ANNOTATIONS.exitCode]: '65',
        [KWOK_FAIL_ANNOTATIONS.message]: 'bad input: prompts.jsonl:3: not JSON',
      },
    };
    const outcome = await ex.run(stageJob(), context());
    expect(outcome.exitCode).toBe(65);
    expect(outcome.reason).toContain('ArtifactMissing');
  });

  it("a Job needing more GPUs than any node has stays Pending with the scheduler's reason; cancel deletes it and its pods", async () => {
    const ex = executor();
    const job = stageJob({ resources: { gpu: 100 } });
    const abort = new AbortController();
    const seen: JobProgress[] = [];
    const running = ex.run(job, context(abort.signal, seen));
    for (let i = 0; i < 100 && !seen.some((p) => p.message?.includes('Insufficient nvidia.com/gpu')); i++) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(seen.map((p) => p.message).join('\n')).toContain(
      'Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu',
    );
    abort.abort('cancelled');
    expect(await running).toMatchObject({ exitCode: null });
    const core = k8s.kubeConfig.makeApiClient(CoreV1Api);
    const batch = k8s.kubeConfig.makeApiClient(BatchV1Api);
    let left = 1;
    for (let i = 0; i < 100 && left > 0; i++) {
      const jobs = (await batch.listNamespacedJob({ namespace: 'default' })).items.filter(
        (j) => j.metadata?.name === job.name,
      );
      const pods = (
        await core.listNamespacedPod({
          namespace: 'default',
          labelSelector: `batch.kubernetes.io/job-name=${job.name}`,
        })
      ).items;
      left = jobs.length + pods.length;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(left).toBe(0);
  });
});
