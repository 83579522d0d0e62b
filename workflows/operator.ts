/**
 * The operator desk: failed stages wait here for a decision (docs/design.md#rule-7). Pure state, workflow-safe.
 * Validators run before an update is accepted, so an action that does not apply is rejected with a reason
 * and changes nothing (it does not even enter history).
 */
import { condition } from '@temporalio/workflow';
import type { JobStage } from '../common/run-spec.js';
import type { StageFailure } from '../common/types.js';
import type { StageActionInput } from './messages.js';

export type Decision = { action: 'retry' | 'skip'; reason?: string };

/** Skipping a generate or score shard leaves its prompts out of this round; later stages need every input. */
export const SKIPPABLE: ReadonlySet<JobStage> = new Set(['generate', 'score']);

export function label(stage: JobStage, shard: number | null): string {
  return shard === null ? stage : `${stage}[${shard}]`;
}

export class OperatorDesk {
  private readonly waiting = new Map<string, { failure: StageFailure; decision?: Decision }>();
  abortReason: string | undefined;

  failures(): StageFailure[] {
    return [...this.waiting.values()].map((w) => w.failure);
  }

  private matching(input: StageActionInput): string[] {
    return [...this.waiting.entries()]
      .filter(
        ([, w]) => w.failure.stage === input.stage && (input.shard === undefined || w.failure.shard === input.shard),
      )
      .filter(([, w]) => !w.decision)
      .map(([l]) => l);
  }

  private describeWaiting(): string {
    const open = [...this.waiting.entries()].filter(([, w]) => !w.decision).map(([l]) => l);
    return open.length ? `waiting for a decision: ${open.join(', ')}` : 'no stage is waiting for a decision';
  }

  validate(action: Decision['action'], input: StageActionInput): void {
    if (!input || typeof input.stage !== 'string') throw new Error('input must be {"stage": "<stage>", "shard"?: n}');
    if (action === 'skip' && !SKIPPABLE.has(input.stage)) {
      throw new Error(
        `skipStage: ${input.stage} cannot be skipped safely (every later stage needs its output); only generate and score shards can be skipped`,
      );
    }
    if (this.matching(input).length === 0) {
      throw new Error(
        `${action}Stage: ${label(input.stage, input.shard ?? null)} is not waiting (${this.describeWaiting()})`,
      );
    }
  }

  decide(action: Decision['action'], input: StageActionInput): string[] {
    const labels = this.matching(input);
    for (const l of labels) this.waiting.get(l)!.decision = { action, reason: input.reason };
    return labels;
  }

  /** Waits for a decision on this failure; 'timeout' when none came in time. */
  async await(failure: StageFailure, timeoutSeconds: number): Promise<Decision | 'timeout'> {
    const l = label(failure.stage, failure.shard);
    const entry: { failure: StageFailure; decision?: Decision } = { failure };
    this.waiting.set(l, entry);
    try {
      const decided = await condition(() => entry.decision !== undefined, `${timeoutSeconds}s`);
      return decided ? entry.decision! : 'timeout';
    } finally {
      this.waiting.delete(l);
    }
  }
}
