/** Round progress, kept in workflow state and served by the `progress` query. Pure, workflow-safe. */
import type { RoundProgress, RoundStage, StageFailure, StageProgress, StageResult } from '../common/types.js';

const WEIGHT: Record<RoundStage, number> = {
  prepare: 5,
  generate: 35,
  score: 15,
  dataset: 5,
  train: 25,
  // the optional baseline arms (spec.baselines): shown with their jobs, not counted in the percentage
  baselines: 0,
  evaluate: 13,
  gate: 1,
  promote: 1,
};

export class ProgressTracker {
  private current: RoundStage | 'done' = 'prepare';
  private readonly stages: Partial<Record<RoundStage, StageProgress>> = {};

  begin(stage: RoundStage, total = 1): void {
    this.current = stage;
    this.stages[stage] = { status: 'running', done: 0, total, jobs: 0, reused: 0, recordsIn: 0, recordsOut: 0 };
  }

  /** Makes a stage begun earlier the current one again, keeping its counts (the baseline arms run in two parts). */
  resume(stage: RoundStage): void {
    this.current = stage;
    const s = this.stages[stage];
    if (s && s.status !== 'failed') s.status = 'running';
  }

  /** Records one finished job (a shard, or the whole stage). */
  finished(stage: RoundStage, r: StageResult): void {
    const s = this.stages[stage]!;
    s.done++;
    s.recordsIn = (s.recordsIn ?? 0) + r.records.in;
    s.recordsOut = (s.recordsOut ?? 0) + r.records.out;
    s.durationS = Math.max(s.durationS ?? 0, r.durationS);
    if (r.reused) s.reused = (s.reused ?? 0) + 1;
    else s.jobs = (s.jobs ?? 0) + 1;
    if (s.done === s.total) s.status = s.reused === s.total ? 'reused' : 'done';
  }

  /** Marks a stage failed (waiting) or back to running after a retry decision. */
  mark(stage: RoundStage, status: StageProgress['status']): void {
    const s = this.stages[stage];
    if (s) s.status = status;
  }

  /** A shard left out by the operator counts as done for progress. */
  skipped(stage: RoundStage): void {
    const s = this.stages[stage]!;
    s.done++;
    if (s.done === s.total) s.status = 'done';
  }

  end(stage: RoundStage, status: StageProgress['status'] = 'done'): void {
    const s = this.stages[stage]!;
    s.status = status;
    s.done = s.total;
  }

  finish(): void {
    this.current = 'done';
  }

  snapshot(waiting: StageFailure[] = []): RoundProgress {
    let percent = 0;
    for (const [stage, w] of Object.entries(WEIGHT) as [RoundStage, number][]) {
      const s = this.stages[stage];
      if (s && s.total > 0) percent += (w * s.done) / s.total;
    }
    const s = this.current === 'done' ? undefined : this.stages[this.current];
    return {
      stage: this.current,
      percent: this.current === 'done' ? 100 : Math.round(percent),
      shardsDone: s?.done ?? 0,
      shardsTotal: s?.total ?? 0,
      stages: JSON.parse(JSON.stringify(this.stages)) as RoundProgress['stages'],
      waiting,
    };
  }
}
