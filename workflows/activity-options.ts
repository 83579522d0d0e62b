/**
 * One table of timeouts and retries per stage (docs/design.md#rule-2 and #rule-6). Heartbeat timeouts are short so a dead
 * worker is noticed quickly; start-to-close is generous (runtime + queueing); schedule-to-close is the
 * stage's whole budget across retries. Non-retryable failure types stop Temporal's retries at once.
 */
import { ActivityCancellationType, patched, type ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE } from '../common/errors.js';
import type { JobStage } from '../common/run-spec.js';

const retry: ActivityOptions['retry'] = {
  initialInterval: '5s',
  backoffCoefficient: 2,
  maximumInterval: '2m',
  maximumAttempts: 3,
  nonRetryableErrorTypes: [...NON_RETRYABLE],
};

const budget: Record<JobStage, { startToClose: string; scheduleToClose: string }> = {
  prepare: { startToClose: '1h', scheduleToClose: '4h' },
  generate: { startToClose: '12h', scheduleToClose: '36h' },
  score: { startToClose: '12h', scheduleToClose: '36h' },
  dataset: { startToClose: '1h', scheduleToClose: '4h' },
  train: { startToClose: '24h', scheduleToClose: '72h' },
  evaluate: { startToClose: '6h', scheduleToClose: '18h' },
};

export function stageActivityOptions(stage: JobStage, heartbeatTimeoutSeconds: number): ActivityOptions {
  return {
    startToCloseTimeout: budget[stage].startToClose,
    scheduleToCloseTimeout: budget[stage].scheduleToClose,
    heartbeatTimeout: `${heartbeatTimeoutSeconds}s`,
    retry,
    summary: stage,
    // A cancelled round waits for its running stages to clean up (delete their Kubernetes Jobs, kill local
    // jobs) before it reports cancelled. With the default (TRY_CANCEL) the run closes at once and the
    // activity learns of it only as NOT_FOUND on its next heartbeat, which cannot be told apart from a run
    // closed by a reset. Patched so histories recorded before this change replay as they ran.
    cancellationType: patched('stage-cancel-waits-for-cleanup')
      ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
      : ActivityCancellationType.TRY_CANCEL,
  };
}

/** Small bookkeeping activities (registry pointer, round record): quick, retried on store trouble. */
export const bookkeepingOptions: ActivityOptions = {
  startToCloseTimeout: '2m',
  scheduleToCloseTimeout: '30m',
  retry: { ...retry, maximumAttempts: 10 },
};
