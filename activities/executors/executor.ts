/**
 * The executor runs one stage job (the container contract: `python -m tao_jobs <stage> --spec <uri>`,
 * JSON-lines progress on stdout, exit codes 0/64/65/other, a one-line reason file) somewhere: a local child
 * process (the embedded default) or a Kubernetes Job. Workflows never see which; the stage activity only
 * sees `run()`.
 */
import type { ArtifactStore } from '../artifacts/store.js';
import type { FailureType } from '../../common/errors.js';
import type { JobStage, RunSpec } from '../../common/run-spec.js';

export interface StageJob {
  /** Deterministic, attempt-independent name (≤ 63 chars, DNS-1123): the identity used for adoption. */
  name: string;
  /**
   * The name for a later generation (docs/design.md#rule-3): an executor that finds the Job of generation g failed
   * moves on to g + 1. Without it only `name` (generation 0) is used.
   */
  nameForGeneration?: (generation: number) => string;
  stage: JobStage;
  shard: number | null;
  specUri: string;
  /** Where the job's log is streamed. */
  logUri: string;
  resources: NonNullable<RunSpec['executor']['resources'][JobStage]>;
  labels: Record<string, string>;
  /** The baseline arm the job belongs to (a `tao.dev/arm` label on a Kubernetes Job), absent for TAO's stages. */
  arm?: string;
  /**
   * Environment the contract adds for the job: where its store is (`TAO_STORE_S3_*`, from the spec's
   * `artifacts.s3`), so the job can read its stage spec from the store before it has parsed the spec.
   */
  env?: Record<string, string>;
  /** Who the job belongs to (labels/annotations of a Kubernetes Job). */
  owner?: { workflowId: string; runId: string; round: number; key: string };
  /**
   * The outputs of an earlier run of this job were rejected (corrupt manifest, checksum mismatch) and
   * quarantined: a finished job must not be adopted again, the work is redone (a new generation on Kubernetes).
   */
  redo?: boolean;
}

export interface JobProgress {
  phase: 'starting' | 'running' | 'succeeded' | 'failed';
  /** The job actually running (a later generation has another name). */
  jobName?: string;
  /** e.g. "1 Running, 1 Failed" (Kubernetes). */
  podSummary?: string;
  done?: number;
  total?: number;
  message?: string;
}

export interface JobOutcome {
  exitCode: number | null;
  signal: string | null;
  /** The termination message (one line written by the job). */
  reason: string;
  /** The last lines of the job's log, for failure messages. */
  logTail: string[];
  /** The job actually run (a later generation has another name). */
  jobName?: string;
  /** Set when the executor knows better than the exit code (e.g. Unschedulable, InvalidImage, OOMKilled). */
  failureType?: FailureType;
}

/**
 * Why the run was interrupted (docs/design.md#rule-4): a user cancel deletes the job; `run-closed` (the workflow run
 * is gone, e.g. terminated or reset) deletes it unless a newer run adopted it; worker shutdown, heartbeat
 * timeout and pause leave it for adoption.
 */
export type StopReason = 'cancelled' | 'run-closed' | 'worker-shutdown' | 'timeout';

export interface RunContext {
  onProgress(p: JobProgress): void;
  /**
   * The round's artifact store, opened with the run spec's own settings (e.g. `artifacts.s3.endpoint`): where the
   * job's log goes. Falls back to the executor's `store` option (tests that drive an executor directly).
   */
  store?: ArtifactStore;
  /** Aborted when the activity is cancelled; `signal.reason` is a StopReason. */
  signal: AbortSignal;
}

export interface Executor {
  readonly kind: RunSpec['executor']['type'];
  run(job: StageJob, ctx: RunContext): Promise<JobOutcome>;
  /**
   * What the stage code runs on, for the memo key (issue 11, item 5): library versions and the source of
   * user modules named in the params (local), the image reference (Kubernetes). Optional: an executor without
   * it contributes nothing to the key.
   */
  runtimeVersion?(stage: JobStage, modules: string[]): Promise<string>;
}

/** A `{"event": "progress", ...}` line of the job contract (stdout), or null for any other line. */
export function progressEvent(line: string): Pick<JobProgress, 'done' | 'total' | 'message'> | null {
  if (!line.startsWith('{')) return null;
  try {
    const e = JSON.parse(line) as { event?: string; done?: number; total?: number; message?: string };
    return e.event === 'progress' ? { done: e.done, total: e.total, message: e.message } : null;
  } catch {
    return null; // a log line that merely starts with "{"
  }
}

/** The store a job's log goes to: the round's (run context), else the executor's default. */
export function logStore(ctx: RunContext, fallback: ArtifactStore | undefined): ArtifactStore {
  const store = ctx.store ?? fallback;
  if (!store) throw new Error('no artifact store for the job log: pass RunContext.store or the executor option');
  return store;
}
