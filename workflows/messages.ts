/**
 * Queries and updates of the round workflow. Names are public API: they are what operators type in
 * `temporal workflow query --type progress` and `temporal workflow update execute --name retryStage`.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { PROGRESS_QUERY } from '../common/constants.js';
import type { JobStage } from '../common/run-spec.js';
import type { RoundProgress } from '../common/types.js';

export const progressQuery = defineQuery<RoundProgress>(PROGRESS_QUERY);

export interface StageActionInput {
  /** The failed stage to act on. */
  stage: JobStage;
  /** One shard only (generate/score); all waiting shards of the stage when omitted. */
  shard?: number;
  reason?: string;
}

export interface AbortInput {
  reason?: string;
}

export interface ActionResult {
  /** The waiting jobs the action applied to, e.g. ["generate[1]"]. */
  applied: string[];
}

/** Run the failed stage again (after fixing its cause). Rejected when no such stage is waiting. */
export const retryStageUpdate = defineUpdate<ActionResult, [StageActionInput]>('retryStage');
/** Leave a failed generate/score shard out of the round. Rejected for stages that cannot be skipped safely. */
export const skipStageUpdate = defineUpdate<ActionResult, [StageActionInput]>('skipStage');
/** End the round now: running jobs are cancelled, finished artifacts stay. */
export const abortUpdate = defineUpdate<ActionResult, [AbortInput]>('abort');
