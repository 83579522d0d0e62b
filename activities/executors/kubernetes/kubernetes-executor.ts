/**
 * The `kubernetes` executor: one batch/v1 Job per stage (or shard).
 *
 * - Identity and adoption: the Job's name is the deterministic job name; creating it again answers 409,
 *   which means "adopt": a retried activity or a new worker picks up the Job already running.
 * - Watching: this first version polls the Job and its pods every `pollMs` (one GET + one LIST per Job).
 *   The shared informer (one watch for all Jobs of the namespace) is the next step for many concurrent Jobs.
 * - Cancellation by reason: `cancelled` deletes the Job with Background propagation (no pods left behind);
 *   `worker-shutdown` / `timeout` leave it running for the retry to adopt.
 * - Outcome: the contract's exit codes (0 / 64 / 65 / 137 / other) with the termination message and the
 *   last lines of the pod log, so the stage activity classifies it like a local job.
 */
import { ApiException, BatchV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { FailureType } from '../../../common/errors.js';
import type { Executor, JobOutcome, RunContext, StageJob } from '../executor.js';
import { classify, type Grace } from './classify.js';
import { buildJob, templateFor } from './job-template.js';
import type { KubernetesStageConfig } from '../../../workers/stage-templates.js';

export interface KubernetesExecutorOptions {
  kubeConfig: KubeConfig;
  config: KubernetesStageConfig;
  pollMs?: number;
  grace?: Grace;
}

const EXIT: Record<string, number> = {
  [FailureType.InvalidStageSpec]: 64,
  [FailureType.ArtifactMissing]: 65,
  [FailureType.StageOutOfMemory]: 137,
};

export class KubernetesExecutor implements Executor {
  readonly kind = 'kubernetes' as const;
  /** Jobs this executor created (an adopted Job is not counted): for tests and the benchmark. */
  created = 0;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;

  constructor(private readonly options: KubernetesExecutorOptions) {
    this.batch = options.kubeConfig.makeApiClient(BatchV1Api);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  async run(job: StageJob, ctx: RunContext): Promise<JobOutcome> {
    const namespace = this.options.config.namespace;
    const owner = job.owner ?? { workflowId: job.name, runId: '', round: 0, key: job.labels.key ?? '' };
    const body = buildJob(job, { namespace, ...owner }, templateFor(this.options.config.templates, job.stage));
    ctx.onProgress({ phase: 'starting', message: `creating Job ${job.name}` });
    try {
      await this.batch.createNamespacedJob({ namespace, body });
      this.created++;
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 409)) throw e;
      ctx.onProgress({ phase: 'starting', message: `adopted the existing Job ${job.name}` });
    }

    const grace = this.options.grace ?? { pendingMs: 10 * 60_000, imagePullMs: 5 * 60_000 };
    for (;;) {
      if (ctx.signal.aborted) {
        if (ctx.signal.reason === 'cancelled') {
          await this.batch
            .deleteNamespacedJob({ name: job.name, namespace, propagationPolicy: 'Background' })
            .catch((e: unknown) => {
              if (!(e instanceof ApiException && e.code === 404)) throw e;
            });
        }
        return { exitCode: null, signal: 'SIGTERM', reason: `stopped (${String(ctx.signal.reason)})`, logTail: [] };
      }
      const current = await this.batch.readNamespacedJob({ name: job.name, namespace });
      const pods = (
        await this.core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job.name}` })
      ).items;
      const state = classify(current, pods, new Date(), grace);
      if (state.phase === 'succeeded') {
        ctx.onProgress({ phase: 'succeeded' });
        return { exitCode: 0, signal: null, reason: '', logTail: await this.logTail(namespace, pods) };
      }
      if (state.phase === 'failed') {
        ctx.onProgress({ phase: 'failed', message: state.reason });
        return {
          exitCode: EXIT[state.type] ?? 1,
          signal: null,
          reason: `${state.type}: ${state.reason}`,
          logTail: await this.logTail(namespace, pods),
        };
      }
      ctx.onProgress({
        phase: state.phase === 'running' ? 'running' : 'starting',
        message: state.phase === 'running' ? state.pods : state.reason,
      });
      await new Promise((r) => setTimeout(r, this.options.pollMs ?? 1000));
    }
  }

  private async logTail(namespace: string, pods: V1Pod[]): Promise<string[]> {
    const pod = pods[pods.length - 1]?.metadata?.name;
    if (!pod) return [];
    try {
      const log = await this.core.readNamespacedPodLog({ name: pod, namespace, tailLines: 30 });
      return String(log).split('\n').filter(Boolean);
    } catch {
      return []; // no log (never started, or a fake node)
    }
  }
}
