/**
 * What a Job and its pods say, as one of: still pending (with the scheduler's reason), running, succeeded,
 * or failed with a failure type (DESIGN rule 5). Reads pod conditions and container states rather than
 * `phase` alone, because phase hides the reasons users need (Unschedulable, ImagePullBackOff, OOMKilled).
 * Pure: table-tested on fixtures named for the behaviour.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { FailureType } from '../../../common/errors.js';

export type JobState =
  | {
      phase: 'pending';
      reason: string;
      since?: Date;
      stuck?: { type: FailureType | 'InvalidImage'; retryable: boolean };
    }
  | { phase: 'running'; pods: string }
  | { phase: 'succeeded' }
  | { phase: 'failed'; type: FailureType | 'InvalidImage' | 'DeadlineExceeded'; retryable: boolean; reason: string };

export interface Grace {
  /** Pending (unschedulable) longer than this is reported as stuck, with the scheduler's reason. */
  pendingMs: number;
  /** ImagePullBackOff longer than this fails non-retryably. */
  imagePullMs: number;
}

const condition = (job: V1Job, type: string) =>
  job.status?.conditions?.find((c) => c.type === type && c.status === 'True');

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
    .sort((a, b) => (a.metadata?.creationTimestamp?.getTime() ?? 0) - (b.metadata?.creationTimestamp?.getTime() ?? 0))
    .pop();
  const terminated = latest?.status?.containerStatuses?.[0]?.state?.terminated;
  const message = terminated?.message?.trim();
  if (failed) {
    if (failed.reason === 'DeadlineExceeded') {
      return {
        phase: 'failed',
        type: 'DeadlineExceeded',
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
      };
    }
    if (terminated?.exitCode === 64)
      return { phase: 'failed', type: FailureType.InvalidStageSpec, retryable: false, reason: message ?? 'exit 64' };
    if (terminated?.exitCode === 65)
      return { phase: 'failed', type: FailureType.ArtifactMissing, retryable: false, reason: message ?? 'exit 65' };
    return {
      phase: 'failed',
      type: FailureType.StageFailed,
      retryable: true,
      reason: evicted
        ? `pod evicted or preempted: ${latest?.status?.message ?? ''}`.trim()
        : `${failed.reason ?? 'Failed'}: ${message ?? failed.message ?? `exit ${terminated?.exitCode}`}`,
    };
  }
  if (!latest) return { phase: 'pending', reason: 'waiting for the job controller to create a pod' };
  const waiting = latest.status?.containerStatuses?.[0]?.state?.waiting;
  const created = latest.metadata?.creationTimestamp ?? now;
  const age = now.getTime() - created.getTime();
  if (waiting && /ImagePullBackOff|ErrImagePull|InvalidImageName/.test(waiting.reason ?? '')) {
    const reason = `${waiting.reason}: ${waiting.message ?? ''}`.trim();
    return age > grace.imagePullMs
      ? { phase: 'failed', type: 'InvalidImage', retryable: false, reason }
      : { phase: 'pending', reason, since: created };
  }
  const unscheduled = latest.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) {
    const reason = `${unscheduled.reason ?? 'Unschedulable'}: ${unscheduled.message ?? ''}`.trim();
    return age > grace.pendingMs
      ? { phase: 'pending', reason, since: created, stuck: { type: FailureType.StageFailed, retryable: true } }
      : { phase: 'pending', reason, since: created };
  }
  if (latest.status?.phase === 'Running') return { phase: 'running', pods: podSummary(pods) };
  return { phase: 'pending', reason: waiting?.reason ?? latest.status?.phase ?? 'Pending', since: created };
}
