/**
 * The `kubernetes` executor: one batch/v1 Job per stage (or shard), watched through one shared watch.
 *
 * - Identity and adoption (docs/design.md#rule-3): the Job's name is a function of workflow id, round, stage, shard
 *   and a generation. Each run looks for the Job of generation 0, 1, ... and stops at the first that has
 *   not failed: it adopts it when it exists (a retried activity, a new worker after a crash) or creates it.
 *   409 AlreadyExists on create also means "adopt". So the generation moves only after a Job failed.
 * - Watching: `JobWatcher` (one watch on Jobs, one on pods, for the whole worker); each run subscribes to
 *   its Job and classifies Job + pods on every change and at every resync (`classify.ts`).
 * - Heartbeats carry the phase, the pod summary, the scheduler's reason while Pending, and the progress
 *   events the job prints on stdout (read from the pod log, which is streamed to the artifact store).
 * - Cancellation by reason (docs/design.md#rule-4): `cancelled` deletes the Job with Background propagation (no pods
 *   left); `worker-shutdown` / `timeout` leave it running for the retry to adopt.
 * - A Job that cannot start (Pending past the pending timeout, image pull failing past its grace) is
 *   deleted and reported with the scheduler's or the registry's reason.
 */
import { ApiException, BatchV1Api, CoreV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import { FailureType } from '../../../common/errors.js';
import type { ArtifactStore } from '../../artifacts/store.js';
import {
  logStore,
  progressEvent,
  type Executor,
  type JobOutcome,
  type JobProgress,
  type RunContext,
  type StageJob,
} from '../executor.js';
import { classify, condition, DEFAULT_GRACE, podSummary, type Grace, type JobState } from './classify.js';
import {
  buildJob,
  buildService,
  CONTAINER,
  KEY_ANNOTATION,
  LOG_URI_ANNOTATION,
  MANAGED_BY_SELECTOR,
  RUN_ID_ANNOTATION,
  templateFor,
  withOwner,
  type JobIdentity,
  type KubernetesStageConfig,
  type StageTemplate,
} from './job-template.js';
import { JobWatcher } from './job-watcher.js';
import { PodLogs } from './pod-logs.js';

/** More failed generations than this means something is wrong beyond retrying. */
const MAX_GENERATIONS = 50;

export interface KubernetesExecutorOptions {
  kubeConfig: KubeConfig;
  config: KubernetesStageConfig;
  /** Where pod logs are streamed when the run context names no store (see RunContext.store). */
  store?: ArtifactStore;
  grace?: Grace;
  resyncMs?: number;
  logUploadEveryMs?: number;
  /** Stream pod logs (default true). The benchmark turns it off: fake nodes serve no logs. */
  streamLogs?: boolean;
}

/**
 * Whether an existing Job is the work of this stage key: its key annotation must be the key. A Job without
 * the annotation (made before it existed) is not proven to be the same work, so it is not adopted.
 */
export function sameWork(existing: V1Job, key: string): boolean {
  return !key || existing.metadata?.annotations?.[KEY_ANNOTATION] === key;
}

const isAlreadyExists = (e: unknown) => e instanceof ApiException && e.code === 409;
const isNotFound = (e: unknown) => e instanceof ApiException && e.code === 404;

export class KubernetesExecutor implements Executor {
  readonly kind = 'kubernetes' as const;
  /** Jobs this executor created (an adopted Job is not counted): for tests and the benchmark. */
  created = 0;
  /** When each Job was created and seen finished (bounded), for the benchmark's transition latency. */
  readonly timeline: { name: string; createdAt: number; finishedAt?: number }[] = [];
  readonly watcher: JobWatcher;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly namespace: string;

  constructor(private readonly options: KubernetesExecutorOptions) {
    this.namespace = options.config.namespace;
    this.batch = options.kubeConfig.makeApiClient(BatchV1Api);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.watcher = new JobWatcher({
      kubeConfig: options.kubeConfig,
      namespace: this.namespace,
      labelSelector: MANAGED_BY_SELECTOR,
      resyncMs: options.resyncMs,
    });
  }

  /** Stops the shared watches (worker shutdown). Jobs keep running, for the next worker to adopt. */
  close(): Promise<void> {
    return this.watcher.stop();
  }

  async run(job: StageJob, ctx: RunContext): Promise<JobOutcome> {
    await this.watcher.start();
    const { name, adopted } = await this.createOrAdopt(job);
    ctx.onProgress({
      phase: 'starting',
      jobName: name,
      message: adopted ? `adopted the existing Job ${name}` : `created Job ${name}`,
    });
    return this.watch(job, name, ctx);
  }

  /** Finds the first generation whose Job has not failed; adopts it, or creates it. */
  private async createOrAdopt(job: StageJob): Promise<{ name: string; adopted: boolean }> {
    const template = templateFor(this.options.config.templates, job.stage);
    const owner = job.owner ?? { workflowId: job.name, runId: '', round: 0, key: job.labels.key ?? '' };
    const id: JobIdentity = { namespace: this.namespace, ...owner };
    for (let generation = 0; generation < MAX_GENERATIONS; generation++) {
      const name = job.nameForGeneration?.(generation) ?? job.name;
      let existing = this.watcher.job(name);
      if (!existing) {
        try {
          const body = buildJob({ ...job, name }, id, template);
          const created = await this.batch.createNamespacedJob({ namespace: this.namespace, body });
          this.created++;
          this.timeline.push({ name, createdAt: Date.now() });
          if (this.timeline.length > 10_000) this.timeline.shift();
          await this.ensureService({ ...job, name }, id, template, created);
          return { name, adopted: false };
        } catch (e) {
          if (!isAlreadyExists(e)) throw e;
          // created a moment ago by another worker (or this one before a restart): not in our cache yet
          existing = await this.batch.readNamespacedJob({ name, namespace: this.namespace });
        }
      }
      if (!sameWork(existing, id.key)) {
        // Another stage key under this name (a Job from before keys were in the name, or a hash collision):
        // never adopt it, its outputs are not this stage's. The next generation is a new name.
        if (!job.nameForGeneration) throw new Error(`${name}: an existing Job of another stage key has this name`);
        continue;
      }
      if (condition(existing, 'Failed')) {
        if (!job.nameForGeneration) return { name, adopted: true }; // one name only: report that failure
        continue; // a failed Job stays for debugging (until its TTL); the retry gets the next generation
      }
      if (job.redo && condition(existing, 'Complete') && job.nameForGeneration) {
        continue; // its outputs were rejected and quarantined: run the work again under the next generation
      }
      await this.recordAdopter(name, owner.runId, job.logUri);
      await this.ensureService({ ...job, name }, id, template, existing); // a worker may have died between the two creates
      return { name, adopted: true };
    }
    throw new Error(`${job.name}: ${MAX_GENERATIONS} generations of this Job failed; not creating another`);
  }

  /**
   * The stage's own image, for the memo key: a changed image reference is changed code. A tag is only as good
   * as its name (the worker cannot resolve digests); pin images by digest (`image@sha256:…`) for exact keys.
   */
  runtimeVersion(stage: StageJob['stage']): Promise<string> {
    return Promise.resolve(`image=${templateFor(this.options.config.templates, stage).image}`);
  }

  /**
   * A multi-node train Job's headless Service (torchrun rendezvous), owned by the Job so the garbage
   * collector deletes it with the Job. Created right after the Job: the pods wait for their peers anyway.
   */
  private async ensureService(job: StageJob, id: JobIdentity, template: StageTemplate, created: V1Job): Promise<void> {
    const service = buildService(job, id, template);
    if (!service) return;
    await this.core
      .createNamespacedService({ namespace: this.namespace, body: withOwner(service, created) })
      .catch((e: unknown) => {
        if (!isAlreadyExists(e)) throw e;
      });
  }

  /**
   * The adopting run's id and log go on the Job, so people (and the reaper's log) see who watches it now and
   * where its log is written: the adopter streams the pod's log from the start into its own attempt's log.
   */
  private async recordAdopter(name: string, runId: string, logUri: string): Promise<void> {
    const annotation = (key: string, value: string) => ({
      op: 'add',
      path: `/metadata/annotations/${key.replace('/', '~1')}`,
      value,
    });
    await this.batch
      .patchNamespacedJob({
        name,
        namespace: this.namespace,
        body: [...(runId ? [annotation(RUN_ID_ANNOTATION, runId)] : []), annotation(LOG_URI_ANNOTATION, logUri)],
      })
      .catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
  }

  private watch(job: StageJob, name: string, ctx: RunContext): Promise<JobOutcome> {
    const grace = this.options.grace ?? DEFAULT_GRACE;
    const streamLogs = this.options.streamLogs ?? true;
    let progress: Pick<JobProgress, 'done' | 'total' | 'message'> = {};
    const logs = new PodLogs({
      kubeConfig: this.options.kubeConfig,
      namespace: this.namespace,
      container: CONTAINER,
      store: logStore(ctx, this.options.store),
      logUri: job.logUri,
      uploadEveryMs: this.options.logUploadEveryMs,
      onLine: (line) => {
        const event = progressEvent(line);
        if (event) {
          progress = event;
          ctx.onProgress({ phase: 'running', jobName: name, ...event });
        }
      },
    });
    let seen = false;
    let lastReport = '';

    return new Promise<JobOutcome>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: Promise<JobOutcome>) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        ctx.signal.removeEventListener('abort', onAbort);
        outcome.then(resolve, reject);
      };
      const finish = async (state: JobState & { phase: 'succeeded' | 'failed' }): Promise<JobOutcome> => {
        const entry = this.timeline.find((t) => t.name === name && t.finishedAt === undefined);
        if (entry) entry.finishedAt = Date.now();
        if (state.phase === 'failed' && state.abandon) await this.delete(name);
        if (streamLogs) await logs.finish();
        ctx.onProgress({ phase: state.phase, jobName: name, message: state.phase === 'failed' ? state.reason : '' });
        if (state.phase === 'succeeded')
          return { exitCode: 0, signal: null, reason: '', logTail: logs.tail, jobName: name };
        return {
          exitCode: state.exitCode ?? null,
          signal: null,
          reason: state.reason, // the type travels separately (failureType), as with the local executor
          logTail: logs.tail,
          jobName: name,
          failureType: state.type,
        };
      };
      const check = () => {
        try {
          update();
        } catch (e) {
          settle(Promise.reject(e as Error));
        }
      };
      const update = () => {
        if (settled) return;
        const current = this.watcher.job(name);
        const pods = this.watcher.podsOf(name);
        if (!current) {
          if (seen) {
            settle(
              Promise.resolve({
                exitCode: null,
                signal: null,
                reason: `Job ${name} was deleted outside TAO while it ran`,
                logTail: logs.tail,
                jobName: name,
                failureType: FailureType.StageFailed,
              }),
            );
          }
          return; // just created: the watch event is on its way
        }
        seen = true;
        if (streamLogs) {
          for (const pod of pods) {
            const phase = pod.status?.phase;
            if (phase === 'Running' || phase === 'Succeeded' || phase === 'Failed') logs.follow(pod.metadata!.name!);
          }
        }
        const state = classify(current, pods, new Date(), grace);
        if (state.phase === 'succeeded' || state.phase === 'failed') {
          settle(finish(state));
          return;
        }
        const report: JobProgress =
          state.phase === 'running'
            ? { phase: 'running', jobName: name, podSummary: state.pods, ...progress }
            : {
                phase: 'starting',
                jobName: name,
                podSummary: podSummary(pods),
                message: state.stuck ? `stuck Pending: ${state.reason}` : state.reason,
              };
        const key = JSON.stringify(report);
        if (key !== lastReport) {
          lastReport = key;
          ctx.onProgress(report);
        }
      };
      const onAbort = () => {
        const reason = String(ctx.signal.reason);
        settle(
          (async () => {
            if (reason === 'cancelled') await this.delete(name);
            // the run is gone: delete unless a newer run (after a reset) has adopted the Job meanwhile
            const adopter = this.watcher.job(name)?.metadata?.annotations?.[RUN_ID_ANNOTATION];
            if (reason === 'run-closed' && (!adopter || adopter === job.owner?.runId)) await this.delete(name);
            if (streamLogs) await logs.finish(0).catch(() => undefined);
            return {
              exitCode: null,
              signal: 'SIGTERM',
              reason: `stopped (${reason})`,
              logTail: logs.tail,
              jobName: name,
            };
          })(),
        );
      };
      const unsubscribe = this.watcher.subscribe(name, check);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      if (ctx.signal.aborted) onAbort();
      else check();
    });
  }

  /** Background propagation: the garbage collector deletes the pods (and a Service owned by the Job). */
  private async delete(name: string): Promise<void> {
    await this.batch
      .deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy: 'Background' })
      .catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
  }
}
