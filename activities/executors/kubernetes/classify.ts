/**
 * What a Job and its pods say, as one of: still pending (with the scheduler's reason), running, succeeded,
 * or failed with a failure type (docs/design.md#rule-5). Reads pod conditions and container states rather than
 * `phase` alone, because phase hides the reasons users need (Unschedulable, ImagePullBackOff, OOMKilled).
 * Pure: table-tested on fixtures named for the behaviour.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { FailureType, failureTypeForExit } from '../../../common/errors.js';

export type JobState =
  | {
      phase: 'pending';
      reason: string;
      since?: Date;
      /** Unschedulable past the grace period: shown as stuck in heartbeats until the pending timeout. */
      stuck?: boolean;
    }
  | { phase: 'running'; pods: string }
  | { phase: 'succeeded' }
  | {
      phase: 'failed';
      type: FailureType;
      retryable: boolean;
      reason: string;
      exitCode?: number;
      /** The Job itself has not failed (pending or image pull past its limit): the executor deletes it. */
      abandon?: boolean;
    };

export interface Grace {
  /** Pending (unschedulable) longer than this is reported as stuck, with the scheduler's reason. */
  pendingMs: number;
  /** Pending longer than this fails the stage (StageUnschedulable) and the Job is deleted. */
  pendingTimeoutMs: number;
  /** ImagePullBackOff longer than this fails non-retryably. */
  imagePullMs: number;
}

export const DEFAULT_GRACE: Grace = { pendingMs: 5 * 60_000, pendingTimeoutMs: 60 * 60_000, imagePullMs: 5 * 60_000 };

/** The Job's condition of this type when it is True (`Complete`, `Failed`, ...). */
export const condition = (job: V1Job, type: string) =>
  job.status?.conditions?.find((c) => c.type === type && c.status === 'True');

/**
 * Objects from a list are deserialized (dates are Dates); objects from watch events are plain JSON (dates are
 * strings). Both go through here.
 */
const time = (d: Date | string | undefined) => (d ? new Date(d).getTime() : 0);

export function podSummary(pods: V1Pod[]): string {
  const count: Record<string, number> = {};
  for (const p of pods) count[p.status?.phase ?? 'Unknown'] = (count[p.status?.phase ?? 'Unknown'] ?? 0) + 1;
  return Object.entries(count)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}

export function classify(job: V1Job, pods: V1Pod[], now: Date, grace: Grace): JobState {
  if (condition(job, 'Complete')) return { phase: 'succeeded' };
  const failed = condition(job, 'Failed');
  const latest = [...pods]
    .sort((a, b) => time(a.metadata?.creationTimestamp) - time(b.metadata?.creationTimestamp))
    .pop();
  const terminated = latest?.status?.containerStatuses?.[0]?.state?.terminated;
  const message = terminated?.message?.trim();
  if (failed) {
    if (failed.reason === 'DeadlineExceeded') {
      return {
        phase: 'failed',
        type: FailureType.StageDeadlineExceeded,
        retryable: false,
        reason: `Job ran past activeDeadlineSeconds: ${failed.message ?? ''}`.trim(),
      };
    }
    // an evicted or preempted pod's container is also killed (137): that is the node's doing, not an OOM
    const evicted =
      latest?.status?.reason === 'Evicted' ||
      latest?.status?.conditions?.some((c) => c.type === 'DisruptionTarget' && c.status === 'True');
    if (!evicted && (terminated?.reason === 'OOMKilled' || terminated?.exitCode === 137)) {
      return {
        phase: 'failed',
        type: FailureType.StageOutOfMemory,
        retryable: false,
        reason: `OOMKilled${message ? `: ${message}` : ''}`,
        exitCode: terminated?.exitCode,
      };
    }
    const code = terminated?.exitCode;
    if (code === 64 || code === 65) {
      // the contract's "do not retry" codes, mapped as for a local job
      return {
        phase: 'failed',
        type: failureTypeForExit(code, null),
        retryable: false,
        reason: message ?? `exit ${code}`,
        exitCode: code,
      };
    }
    return {
      phase: 'failed',
      type: FailureType.StageFailed,
      retryable: true,
      exitCode: terminated?.exitCode,
      reason: evicted
        ? `pod evicted or preempted: ${latest?.status?.message ?? ''}`.trim()
        : `${failed.reason ?? 'Failed'}: ${message ?? failed.message ?? `exit ${terminated?.exitCode}`}`,
    };
  }
  if (!latest) return { phase: 'pending', reason: 'waiting for the job controller to create a pod' };
  const waiting = latest.status?.containerStatuses?.[0]?.state?.waiting;
  const created = latest.metadata?.creationTimestamp ? new Date(latest.metadata.creationTimestamp) : now;
  const age = now.getTime() - created.getTime();
  if (waiting && /ImagePullBackOff|ErrImagePull|InvalidImageName/.test(waiting.reason ?? '')) {
    const reason = `${waiting.reason}: ${waiting.message ?? ''}`.trim();
    return age > grace.imagePullMs
      ? { phase: 'failed', type: FailureType.InvalidImage, retryable: false, reason, abandon: true }
      : { phase: 'pending', reason, since: created };
  }
  const unscheduled = latest.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) {
    const reason = `${unscheduled.reason ?? 'Unschedulable'}: ${unscheduled.message ?? ''}`.trim();
    if (age > grace.pendingTimeoutMs) {
      const minutes = Math.round(age / 60_000);
      return {
        phase: 'failed',
        type: FailureType.StageUnschedulable,
        retryable: false,
        reason: `Pending for ${minutes} min: ${reason}`,
        abandon: true,
      };
    }
    return age > grace.pendingMs
      ? { phase: 'pending', reason, since: created, stuck: true }
      : { phase: 'pending', reason, since: created };
  }
  if (latest.status?.phase === 'Running') return { phase: 'running', pods: podSummary(pods) };
  return { phase: 'pending', reason: waiting?.reason ?? latest.status?.phase ?? 'Pending', since: created };
}
