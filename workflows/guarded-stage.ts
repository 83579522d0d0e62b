/**
 * Runs one stage (or shard) job under the operator desk (docs/design.md#rule-7):
 * when the activity fails for good, the round records why, shows it in the Web UI and waits for
 * `retryStage` / `skipStage` / `abort` instead of failing. Workflow-safe.
 */
import { ActivityFailure, ApplicationFailure, isCancellation, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureType } from '../common/errors.js';
import type { BaselineArm, JobStage, RunSpec } from '../common/run-spec.js';
import type { RoundStage, RunStageInput, StageFailure, StageResult } from '../common/types.js';
import { stageActivityOptions } from './activity-options.js';
import { label, type OperatorDesk } from './operator.js';
import type { ProgressTracker } from './progress.js';
import type { StageRequest } from './stage-params.js';
import { showStage } from './visibility.js';

/** Returned by a guarded stage call that the operator chose to skip. */
export const SKIPPED = Symbol('skipped');
export type Guarded = StageResult | typeof SKIPPED;

/** A stage's output URI by name (a single file or folder; a list is read from `outputs` directly). */
export const out = (r: StageResult, name: string) => r.outputs[name] as string;

export interface GuardContext {
  spec: RunSpec;
  workflowId: string;
  progress: ProgressTracker;
  desk: OperatorDesk;
  /** Called after every change the Web UI's current details should show. */
  refresh: () => void;
  /** Output links shown in the current details, by stage. */
  links: Record<string, string>;
}

/** A stage runner bound to one round: `run(request, shard)` returns the stage's result or SKIPPED. */
export function guardedStages(ctx: GuardContext) {
  const { spec, progress, desk, refresh, links } = ctx;
  // One proxy; each call passes its stage's own options (timeouts, summary) with executeWithOptions.
  const { runStage } = proxyActivities<Activities>(
    stageActivityOptions('prepare', spec.executor.heartbeatTimeoutSeconds),
  );

  return async function run<S extends JobStage>(
    request: StageRequest<S>,
    shard: RunStageInput['shard'] = null,
    options: { arm?: BaselineArm } = {},
  ): Promise<Guarded> {
    const name = request.stage;
    // a baseline arm's jobs count under the `baselines` progress entry, and say which arm they belong to
    const counted: RoundStage = options.arm ? 'baselines' : name;
    const what = options.arm ? `${options.arm} ${name}` : name;
    const summary = shard ? `${what} shard ${shard.index + 1}/${shard.count}` : what;
    const input: RunStageInput = {
      run: { name: spec.name, round: spec.round, workflowId: ctx.workflowId },
      stage: name,
      shard,
      inputs: request.inputs,
      params: request.params as Record<string, unknown>,
      artifacts: spec.artifacts,
      executor: spec.executor,
      ...(options.arm ? { arm: options.arm } : {}),
    };
    for (;;) {
      try {
        const r = await runStage.executeWithOptions(
          { ...stageActivityOptions(name, spec.executor.heartbeatTimeoutSeconds), summary },
          [input],
        );
        progress.finished(counted, r);
        links[what] = shard ? r.output.replace(/[^/]+\/$/, '') : r.output;
        refresh();
        return r;
      } catch (e) {
        if (isCancellation(e) || !spec.operator.waitOnFailure) throw e;
        const failure = describeFailure(e, name, shard?.index ?? null);
        progress.mark(counted, 'failed');
        showStage(counted, 'waiting-for-operator');
        const waiting = desk.await(failure, spec.operator.decisionTimeoutSeconds);
        refresh();
        const decision = await waiting;
        if (decision === 'timeout') {
          throw ApplicationFailure.create({
            type: failure.type,
            nonRetryable: true,
            message: `${label(name, failure.shard)} failed and no operator decision came within ${spec.operator.decisionTimeoutSeconds}s: ${failure.message}`,
          });
        }
        progress.mark(counted, 'running');
        showStage(counted, 'running');
        refresh();
        if (decision.action === 'skip') {
          progress.skipped(counted);
          return SKIPPED;
        }
      }
    }
  };
}

/** A stage every later stage needs: skipping it is refused by the desk, so SKIPPED here is a bug. */
export function required(r: Guarded): StageResult {
  if (r === SKIPPED) {
    throw ApplicationFailure.nonRetryable(
      'a stage that cannot be skipped was skipped',
      FailureType.InvalidOperatorAction,
    );
  }
  return r;
}

/** What the operator needs to see about a failed stage: type, the job's reason, the log tail and where the log is. */
export function describeFailure(e: unknown, stage: JobStage, shard: number | null): StageFailure {
  const cause = e instanceof ActivityFailure ? e.cause : e;
  const app = cause instanceof ApplicationFailure ? cause : undefined;
  const detail = (app?.details?.[0] ?? {}) as { reason?: string; logTail?: string[]; logUri?: string };
  return {
    stage,
    shard,
    type: app?.type ?? FailureType.StageFailed,
    message: (cause as Error | undefined)?.message ?? String(e),
    reason: detail.reason,
    logTail: detail.logTail?.slice(-20),
    logUri: detail.logUri,
    at: new Date().toISOString(),
  };
}
