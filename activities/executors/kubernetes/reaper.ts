/**
 * The reaper: the backstop of docs/design.md#rule-4 for stage Jobs whose workflow is closed. The executor deletes a
 * Job itself only when its activity is cancelled; a Job outlives its round when the workflow is terminated,
 * times out, or fails while a stage runs, and when a worker dies for good. `ttlSecondsAfterFinished` only
 * covers Jobs that finished, and `activeDeadlineSeconds` is a day: the reaper deletes such Jobs as soon as
 * their workflow is closed.
 *
 * Node-only (Kubernetes and Temporal clients); `tao reap` runs it, from cron or the CronJob in
 * k8s/base/reaper-cronjob.yaml.
 *
 * Safety rules:
 * - Only Jobs labelled `app.kubernetes.io/managed-by=tao-worker` are looked at; Jobs without the
 *   `tao.dev/workflow-id` annotation are skipped (reported, never deleted).
 * - Jobs younger than `minAgeSeconds` are never deleted.
 * - Every workflow is described before anything is deleted; any Temporal error other than "workflow not
 *   found" aborts the run with nothing deleted.
 * - Deletion uses `propagationPolicy: Background` (a Job deleted with the API's default policy for Jobs orphans
 *   its pods, which keep running) and a `uid` precondition, so a Job re-created under the same name after it
 *   was listed (by a new run adopting the name) is not deleted.
 */
import { ApiException, BatchV1Api, type KubeConfig, type V1Job } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type WorkflowClient, type WorkflowExecutionStatusName } from '@temporalio/client';
import { MANAGED_BY_SELECTOR, RUN_ID_ANNOTATION, WORKFLOW_ID_ANNOTATION } from './job-template.js';

export const DEFAULT_MIN_AGE_SECONDS = 600;

export interface ReapOptions {
  kubeConfig: KubeConfig;
  /** Kubernetes namespace of the stage Jobs. */
  namespace: string;
  /** A Temporal client of the namespace the rounds run in (`client.workflow` of a `Client`). */
  client: WorkflowClient;
  /** Decide and report, delete nothing. */
  dryRun?: boolean;
  /** Jobs created less than this many seconds ago are kept whatever their workflow's state [600]. */
  minAgeSeconds?: number;
  /** Jobs per list request (`limit`; the rest is fetched with `continue`) [500]. */
  pageSize?: number;
  /** Workflows described at the same time [8]. */
  concurrency?: number;
  /** The clock (tests). */
  now?: () => Date;
}

/** The state of a workflow id's latest run, or NOT_FOUND when Temporal does not know the id. */
export type ReapWorkflowStatus = WorkflowExecutionStatusName | 'NOT_FOUND';

export interface ReapEntry {
  /** The Job's name. */
  job: string;
  /** Its `tao.dev/workflow-id` annotation (null when it has none). */
  workflowId: string | null;
  /** Its `tao.dev/run-id` annotation: the run that created it (a later run of the same id may have adopted it). */
  runId: string | null;
  /** The workflow's state, when it was looked up. */
  workflowStatus?: ReapWorkflowStatus;
  reason: string;
}

export interface ReapReport {
  namespace: string;
  dryRun: boolean;
  kept: ReapEntry[];
  /** Jobs deleted (in a dry run: the Jobs that would be deleted). */
  deleted: ReapEntry[];
  /** Jobs the reaper cannot attribute to a workflow, or already being deleted. */
  skipped: ReapEntry[];
}

export class ReapError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReapError';
  }
}

const CLOSED: ReadonlySet<ReapWorkflowStatus> = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TERMINATED',
  'TIMED_OUT',
  'NOT_FOUND',
]);
const OPEN: ReadonlySet<ReapWorkflowStatus> = new Set(['RUNNING', 'PAUSED']);

interface WorkflowState {
  status: ReapWorkflowStatus;
  runId?: string;
  closeTime?: Date;
}

export async function reapJobs(options: ReapOptions): Promise<ReapReport> {
  const { kubeConfig, namespace, client } = options;
  const dryRun = options.dryRun ?? false;
  const minAgeSeconds = options.minAgeSeconds ?? DEFAULT_MIN_AGE_SECONDS;
  if (!Number.isFinite(minAgeSeconds) || minAgeSeconds < 0) {
    throw new ReapError(`minAgeSeconds must be a number ≥ 0, got ${minAgeSeconds}`);
  }
  const now = (options.now ?? (() => new Date()))();
  const batch = kubeConfig.makeApiClient(BatchV1Api);
  const report: ReapReport = { namespace, dryRun, kept: [], deleted: [], skipped: [] };

  const jobs = await listJobs(batch, namespace, options.pageSize ?? 500);

  // 1. Sort out the Jobs that need no workflow lookup; group the rest by workflow id.
  const candidates = new Map<string, V1Job[]>();
  const young: { job: V1Job; ageSeconds: number }[] = [];
  for (const job of jobs) {
    const entry = entryOf(job);
    if (job.metadata?.deletionTimestamp) {
      report.skipped.push({ ...entry, reason: 'already being deleted' });
    } else if (!entry.workflowId) {
      report.skipped.push({
        ...entry,
        reason: `no ${WORKFLOW_ID_ANNOTATION} annotation: cannot tell which workflow it belongs to`,
      });
    } else {
      const ageSeconds = ageOf(job, now);
      if (ageSeconds < minAgeSeconds) {
        young.push({ job, ageSeconds });
      } else {
        const group = candidates.get(entry.workflowId) ?? [];
        group.push(job);
        candidates.set(entry.workflowId, group);
      }
    }
  }
  for (const { job, ageSeconds } of young) {
    report.kept.push({
      ...entryOf(job),
      reason: `created ${Math.floor(ageSeconds)}s ago, younger than the minimum age ${minAgeSeconds}s`,
    });
  }

  // 2. Describe every workflow once, before deleting anything: a Temporal error aborts with nothing deleted.
  const states = new Map<string, WorkflowState>();
  await forEachLimited([...candidates.keys()], options.concurrency ?? 8, async (workflowId) => {
    states.set(workflowId, await describeLatest(client, workflowId));
  });

  // 3. Decide, then delete.
  const doomed: { job: V1Job; entry: ReapEntry }[] = [];
  for (const [workflowId, group] of candidates) {
    const state = states.get(workflowId)!;
    for (const job of group) {
      const entry: ReapEntry = { ...entryOf(job), workflowStatus: state.status };
      if (OPEN.has(state.status)) {
        const adopted = entry.runId && state.runId && entry.runId !== state.runId;
        report.kept.push({
          ...entry,
          reason:
            `workflow ${state.status} (run ${state.runId})` +
            (adopted ? `; created by the earlier run ${entry.runId}, the open run may adopt it` : ''),
        });
      } else if (CLOSED.has(state.status)) {
        doomed.push({
          job,
          entry: {
            ...entry,
            reason:
              state.status === 'NOT_FOUND'
                ? `workflow not found in Temporal namespace ${client.options.namespace} (never started there, or removed after the retention period)`
                : `workflow ${state.status} (latest run ${state.runId}` +
                  (state.closeTime ? `, closed ${state.closeTime.toISOString()})` : ')'),
          },
        });
      } else {
        // CONTINUED_AS_NEW as the latest run (a successor is or was open), UNSPECIFIED, UNKNOWN: in doubt, keep
        report.kept.push({ ...entry, reason: `workflow status ${state.status}: not known to be closed` });
      }
    }
  }

  for (const { job, entry } of doomed) {
    if (dryRun) {
      report.deleted.push(entry);
      continue;
    }
    const name = job.metadata!.name!;
    try {
      await batch.deleteNamespacedJob({
        name,
        namespace,
        propagationPolicy: 'Background',
        body: { propagationPolicy: 'Background', preconditions: { uid: job.metadata?.uid } },
      });
      report.deleted.push(entry);
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) {
        report.deleted.push({ ...entry, reason: `${entry.reason}; already gone` });
      } else if (e instanceof ApiException && e.code === 409) {
        // the uid precondition failed: a Job of the same name was created after the listing
        report.kept.push({ ...entry, reason: 'a new Job with this name was created since the listing' });
      } else {
        throw new ReapError(
          `deleting Job ${namespace}/${name} failed: ${describeError(e)} ` +
            `(deleted before this one: ${report.deleted.map((d) => d.job).join(', ') || 'none'})`,
          { cause: e },
        );
      }
    }
  }

  for (const list of [report.kept, report.deleted, report.skipped]) list.sort((a, b) => a.job.localeCompare(b.job));
  return report;
}

async function listJobs(batch: BatchV1Api, namespace: string, limit: number): Promise<V1Job[]> {
  const jobs: V1Job[] = [];
  let next: string | undefined;
  do {
    const page = await batch.listNamespacedJob({
      namespace,
      labelSelector: MANAGED_BY_SELECTOR,
      limit,
      _continue: next,
    });
    jobs.push(...page.items);
    next = page.metadata?._continue || undefined;
  } while (next);
  return jobs;
}

/**
 * The state of the workflow id's *latest* run, not of the run named in the Job's `tao.dev/run-id`.
 *
 * After a Reset (or a new start of the same id once the previous run closed, e.g. `tao run spec.json` again)
 * the new run computes the same deterministic Job names (docs/design.md#rule-3: the name depends on the workflow id,
 * never on the run) and adopts the Jobs the earlier run created, whose annotations still name the earlier,
 * now closed, run. Judging a Job by its annotated run would delete a Job an open run is watching. So a Job
 * is kept while ANY run of its workflow id is open, and Temporal allows at most one open run per workflow id
 * and that is the latest one: describing by id without a run id answers exactly that question. If the
 * latest run is closed, every run is.
 */
async function describeLatest(client: WorkflowClient, workflowId: string): Promise<WorkflowState> {
  try {
    const d = await client.getHandle(workflowId).describe();
    return { status: d.status.name, runId: d.runId, closeTime: d.closeTime };
  } catch (e) {
    // only "this workflow does not exist" counts as closed; a missing namespace, an unreachable server,
    // a permission error or a payload that cannot be decoded are doubts, and doubt never deletes
    if (e instanceof WorkflowNotFoundError) return { status: 'NOT_FOUND' };
    throw new ReapError(
      `describing workflow ${workflowId} in Temporal namespace ${client.options.namespace} failed, nothing was deleted: ${describeError(e)}`,
      { cause: e },
    );
  }
}

function entryOf(job: V1Job): ReapEntry {
  const a = job.metadata?.annotations ?? {};
  return {
    job: job.metadata?.name ?? '(unnamed)',
    workflowId: a[WORKFLOW_ID_ANNOTATION] || null,
    runId: a[RUN_ID_ANNOTATION] || null,
    reason: '',
  };
}

function ageOf(job: V1Job, now: Date): number {
  const created = job.metadata?.creationTimestamp;
  // no timestamp (never the case for a Job read from the API server): treat it as brand new
  if (!created) return 0;
  return (now.getTime() - new Date(created).getTime()) / 1000;
}

function describeError(e: unknown): string {
  if (e instanceof ApiException) {
    const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body);
    let message = body;
    try {
      message = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      /* not JSON */
    }
    return `HTTP ${e.code}: ${message}`;
  }
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : '';
    return `${e.name}: ${e.message}${cause}`;
  }
  return String(e);
}

/** Runs `fn` over `items` with at most `limit` at a time; the first error is thrown once the others settle. */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let index = 0;
  let failure: { error: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
    while (!failure && index < items.length) {
      const item = items[index++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  });
  await Promise.all(lanes);
  if (failure) throw failure.error;
}
