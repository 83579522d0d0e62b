/** Shapes that cross Temporal: references, digests and small metrics only (docs/design.md#rule-1). */
import type { BaselineArm, JobStage, RunSpec } from './run-spec.js';

export interface RunRef {
  name: string;
  round: number;
  workflowId: string;
}

/** Input of the `runStage` activity. `inputs` are URIs (or lists of URIs, one per shard). */
export interface RunStageInput {
  run: RunRef;
  stage: JobStage;
  shard: { index: number; count: number } | null;
  inputs: Record<string, string | string[]>;
  params: Record<string, unknown>;
  artifacts: RunSpec['artifacts'];
  executor: RunSpec['executor'];
  /** The baseline arm this job belongs to (spec.baselines), absent for TAO's own stages: a label on its Job. */
  arm?: BaselineArm;
}

export interface StageResult {
  stage: JobStage;
  shard: number | null;
  key: string;
  /** Output prefix of the stage (ends with "/"). */
  output: string;
  manifest: string;
  /** Output name -> absolute URI (or list of URIs). */
  outputs: Record<string, string | string[]>;
  records: { in: number; out: number };
  metrics: Record<string, unknown>;
  durationS: number;
  /** True when a valid manifest already existed and no job ran. */
  reused: boolean;
  jobName: string;
}

export type StageStatus = 'pending' | 'running' | 'done' | 'reused' | 'failed' | 'skipped';

export interface StageProgress {
  status: StageStatus;
  done: number;
  total: number;
  recordsIn?: number;
  recordsOut?: number;
  durationS?: number;
  jobs?: number;
  reused?: number;
}

export type RoundStage = JobStage | 'baselines' | 'gate' | 'promote';

/** A stage (or shard) that failed for good and waits for an operator decision. */
export interface StageFailure {
  stage: JobStage;
  shard: number | null;
  /** Failure type (see common/errors.ts). */
  type: string;
  message: string;
  /** The job's one-line reason, when it wrote one. */
  reason?: string;
  logTail?: string[];
  logUri?: string;
  /** ISO time the stage failed. */
  at: string;
}

export interface RoundProgress {
  stage: RoundStage | 'done';
  percent: number;
  shardsDone: number;
  shardsTotal: number;
  stages: Partial<Record<RoundStage, StageProgress>>;
  /** Failed stages waiting for retryStage / skipStage / abort. */
  waiting: StageFailure[];
}

export interface ScoreSummary {
  mean: number;
  ciLow: number;
  ciHigh: number;
  meanLength?: number;
  n: number;
}

/** A paired comparison (after − before per prompt): mean change and its bootstrap 95% CI. */
export interface PairedChange {
  change: number;
  ciLow: number;
  ciHigh: number;
  n: number;
}

/** The evaluation as the round result carries it: the independent metric, and the evidence beside it. */
export interface RoundEvaluation {
  base: ScoreSummary;
  tuned: ScoreSummary;
  /** tuned − base mean on the evaluation's own metric (the training scorers when reused by choice). */
  improvement: number;
  improvementCiLow?: number;
  improvementCiHigh?: number;
  winRate?: number;
  /** Which scorers judged: the evaluation's own, or the training scorers (`evaluation.reuseTrainingScorers`). */
  scorers?: 'evaluation' | 'training';
  /** The training reward's change on the same prompts. */
  reward?: PairedChange;
  rewardHacking?: { flagged: boolean; checked: boolean; reason: string };
  tasks?: Record<string, PairedChange>;
  vsPromoted?: Partial<PairedChange> & { compared: boolean; uri?: string; sameAs?: string | null };
  drift?: { lengthChange: number; formatDrift: number };
  klToBase?: number | null;
  /** The baseline arms the spec asked for (`baselines`), on the same prompts with the same statistics. */
  baselines?: Partial<Record<BaselineArm, BaselineResult>>;
}

/** One baseline arm beside TAO: its score, arm − base and TAO − arm, paired per prompt with bootstrap CIs. */
export interface BaselineResult {
  score: ScoreSummary;
  vsBase: PairedChange;
  taoVsArm: PairedChange;
  /** Where the arm's model (or best-of-N's samples) came from. */
  uri?: string;
}

export type GateCheckName = 'rule' | 'promoted' | 'tasks' | 'rewardHacking' | 'promote';

export interface GateCheck {
  name: GateCheckName;
  passed: boolean;
  detail: string;
}

/** The gate's decision (workflows/gate.ts): which rule decided, with what numbers. */
export interface GateDecision {
  passed: boolean;
  /** One line: the check that decided and its numbers. */
  reason: string;
  rule?: 'mean' | 'ciLower';
  /** The rule's statistic (mean change or its CI lower bound); null when nothing was comparable. */
  statistic?: number | null;
  threshold?: number;
  decidedBy?: GateCheckName;
  checks?: GateCheck[];
}

export interface PromoteInput {
  registry: string;
  runName: string;
  round: number;
  workflowId: string;
  modelUri: string;
  adapterUri?: string;
  baseModelUri: string;
  evaluation: { base: ScoreSummary; tuned: ScoreSummary; improvement: number };
  artifacts: RunSpec['artifacts'];
}

export interface PromoteResult {
  pointer: string;
  previousModelUri: string | null;
}

export interface RoundResult {
  workflowId: string;
  runName: string;
  round: number;
  specHash: string;
  baseModel: string;
  tunedModel: string;
  stages: Partial<Record<RoundStage, StageProgress>>;
  artifacts: {
    prompts: string[];
    heldOut: string;
    generations: string[];
    scores: string[];
    dataset: string;
    adapter: string;
    merged: string;
    report: string;
    /** The baseline arms' outputs, when the spec asked for any (`baselines`). */
    baselines?: {
      labelledFineTuning?: string;
      randomReward?: string;
      bestOfNGenerations?: string;
      bestOfNScores?: string;
    };
  };
  evaluation: RoundEvaluation;
  gate: GateDecision;
  promoted: boolean;
  registryPointer: string | null;
  reusedStages: string[];
  /** Shards an operator left out with skipStage. */
  skipped: string[];
}

/** The flywheel's durable state, kept in the artifact store (`<artifacts>/flywheel/<name>/state.json`). */
export interface FlywheelState {
  /** The last finished round (0 before the first). */
  round: number;
  /** Key (relative to the source prefix) of the last source file consumed; later keys are new. */
  watermark: string | null;
  /**
   * Per source file read (by key), how far: lines appended later are read by the next round. A file at or
   * below the watermark without a cursor was read whole before cursors existed.
   */
  cursors?: Record<string, FileCursor>;
  /** Per finished round, the URI of the prompt digests it used (for de-duplication). */
  seen: string[];
  lastRound?: { workflowId: string; promoted: boolean; improvement: number; model: string };
}

/** How much of a source file the flywheel has consumed: bytes (complete lines only) and the lines in them. */
export interface FileCursor {
  bytes: number;
  lines: number;
}

export interface CollectResult {
  /** Prepared prompts JSONL for the round (null when there was nothing new). */
  promptsUri: string | null;
  digestsUri: string | null;
  prompts: number;
  files: number;
  duplicates: number;
  invalid: number;
  /** First few malformed lines as `file:line: reason`. */
  problems: string[];
  redactions: number;
  /** Watermark to commit once the round has finished. */
  watermark: string | null;
  /** Cursors of the files this round read, to merge into the state once the round has finished. */
  cursors?: Record<string, FileCursor>;
  /** Files with unread lines left for the next round of this run (a backlog split over rounds). */
  remainingFiles?: number;
}

export interface FlywheelRoundSummary {
  round: number;
  workflowId: string;
  prompts: number;
  promoted: boolean;
  improvement: number;
  baseModel: string;
  model: string;
}

export interface FlywheelResult {
  name: string;
  status: 'rounds-finished' | 'nothing-new';
  rounds: FlywheelRoundSummary[];
  state: FlywheelState;
  message: string;
}

/** The store preflight's input (activities/preflight.ts): the round's store settings and what must be there. */
export interface CheckStoreInput {
  artifacts: RunSpec['artifacts'];
  /** Inputs that must exist: objects (a file) or prefixes (ending in "/": a model folder). */
  inputs: Record<string, string>;
  /** Prefixes that must answer a listing but may be empty (the flywheel's log prefix before the first logs). */
  reachable?: Record<string, string>;
}
