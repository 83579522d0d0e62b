/**
 * What each stage job is asked to do, built from the run spec: the `inputs` and `params` of its stage spec
 * (common/stage-spec.ts, the JSON Schema the Python jobs validate against). Pure and workflow-safe.
 *
 * Typed by the stage-spec schema itself, so a param the job would refuse (exit 64 at run time) is a compile
 * error here instead. The params are part of each stage's memo key (docs/design.md#rule-8):
 * changing what a builder returns changes the keys of that stage and everything downstream.
 */
import { MIN_EVAL_PROMPTS, type BaselineArm, type JobStage, type RunSpec } from '../common/run-spec.js';
import type { StageSpec } from '../common/stage-spec.js';
import type { CheckStoreInput } from '../common/types.js';
import { referenceNeeds } from '../common/validate.js';

type LabelledArm = NonNullable<NonNullable<RunSpec['baselines']>['labelledFineTuning']>;
type SpecOf<S extends JobStage> = Extract<StageSpec, { stage: S }>;

/** One stage's request: the stage, its input URIs and its params, exactly as its stage spec carries them. */
export interface StageRequest<S extends JobStage = JobStage> {
  stage: S;
  inputs: SpecOf<S>['inputs'];
  params: SpecOf<S>['params'];
}

/** Any one stage's request (a union over the stages, so each keeps its own inputs and params). */
export type AnyStageRequest = { [S in JobStage]: StageRequest<S> }[JobStage];

/**
 * `legacy`: the request as rounds started before the independent evaluation (issue 10) made it, so their
 * memoized stages keep their keys; see the `independent-evaluation` patch in tao-round.ts.
 */
export interface RequestOptions {
  legacy?: boolean;
}

export function prepareRequest(spec: RunSpec, options: RequestOptions = {}): StageRequest<'prepare'> {
  const { evaluation } = spec;
  const references = options.legacy ? {} : referenceNeeds(spec);
  return {
    stage: 'prepare',
    inputs: {
      prompts: spec.prompts.uri,
      model: spec.baseModel,
      ...(evaluation.heldOutUri ? { heldOut: evaluation.heldOutUri } : {}),
      ...(evaluation.benchmarkUri && !options.legacy ? { benchmark: evaluation.benchmarkUri } : {}),
    },
    params: {
      onInvalid: spec.prompts.onInvalid,
      shards: spec.generation.shards,
      seed: evaluation.seed,
      ...(evaluation.heldOutFraction !== undefined ? { heldOutFraction: evaluation.heldOutFraction } : {}),
      ...(Object.keys(references).length ? { references } : {}),
      ...(options.legacy ? {} : { minEvalPrompts: { count: MIN_EVAL_PROMPTS[spec.gate.rule], field: 'gate.rule' } }),
    },
  };
}

export function generateRequest(spec: RunSpec, prompts: string, model: string): StageRequest<'generate'> {
  const { shards: _shards, ...params } = spec.generation;
  return { stage: 'generate', inputs: { prompts, model }, params };
}

export function scoreRequest(spec: RunSpec, prompts: string, generations: string): StageRequest<'score'> {
  return { stage: 'score', inputs: { prompts, generations }, params: spec.scoring };
}

export function datasetRequest(
  spec: RunSpec,
  inputs: { prompts: string[]; generations: string[]; scores: string[] },
): StageRequest<'dataset'> {
  const { algorithm, minMargin, minScore, ktoQuantile } = spec.training;
  return { stage: 'dataset', inputs, params: { algorithm, minMargin, minScore, ktoQuantile } };
}

export function trainRequest(spec: RunSpec, dataset: string, model: string): StageRequest<'train'> {
  return { stage: 'train', inputs: { dataset, model }, params: spec.training };
}

export interface EvaluateInputs {
  /** Held-out prompts (with their references). */
  prompts: string;
  /** The fixed benchmark as prepared (present when the spec has `evaluation.benchmarkUri`). */
  benchmark?: string;
  base: string;
  tuned: string;
  /** The currently promoted model, when there is one other than base and candidate. */
  promoted?: string;
  /** The baseline arms' outputs (spec.baselines). */
  labelledFineTuning?: string;
  randomReward?: string;
  bestOfNGenerations?: string;
  bestOfNScores?: string;
}

export function evaluateRequest(
  spec: RunSpec,
  inputs: EvaluateInputs,
  options: RequestOptions = {},
): StageRequest<'evaluate'> {
  const { evaluation } = spec;
  const common = {
    scoring: spec.scoring,
    samplesPerPrompt: evaluation.samplesPerPrompt,
    temperature: evaluation.temperature,
    maxTokens: spec.generation.maxTokens,
    seed: evaluation.seed,
    bootstrap: 1000,
  };
  if (options.legacy) {
    return {
      stage: 'evaluate',
      inputs: { prompts: inputs.prompts, base: inputs.base, tuned: inputs.tuned },
      params: common,
    };
  }
  const own = evaluation.scorers
    ? { reuseTrainingScorers: false, scorers: evaluation.scorers, tasks: evaluation.tasks ?? {} }
    : { reuseTrainingScorers: true };
  return {
    stage: 'evaluate',
    inputs: {
      prompts: inputs.prompts,
      ...(inputs.benchmark ? { benchmark: inputs.benchmark } : {}),
      base: inputs.base,
      tuned: inputs.tuned,
      ...(inputs.promoted ? { promoted: inputs.promoted } : {}),
      ...(inputs.labelledFineTuning ? { labelledFineTuning: inputs.labelledFineTuning } : {}),
      ...(inputs.randomReward ? { randomReward: inputs.randomReward } : {}),
      ...(inputs.bestOfNGenerations && inputs.bestOfNScores
        ? { bestOfNGenerations: inputs.bestOfNGenerations, bestOfNScores: inputs.bestOfNScores }
        : {}),
    },
    params: { ...common, evaluation: own, gate: spec.gate },
  };
}

/**
 * The labelled baseline's dataset: prepare again with the same inputs and split params, asked to write only
 * `baseline-labelled-sft.jsonl` (the training prompts with their references as SFT targets). A stage of its
 * own, so the TAO arm's prepare (and everything after it) keeps its key whether or not the arm is on, and the
 * references reach only this one, clearly named artifact.
 */
export function labelsRequest(spec: RunSpec): StageRequest<'prepare'> | undefined {
  const arm = spec.baselines?.labelledFineTuning;
  if (!arm) return undefined;
  const base = prepareRequest(spec);
  const template = typeof arm.targetTemplate === 'string' ? { '*': arm.targetTemplate } : arm.targetTemplate;
  return {
    ...base,
    params: {
      ...base.params,
      labelled: {
        targetTemplate: template,
        missingReferences: arm.missingReferences,
        field: 'baselines.labelledFineTuning',
      },
    },
  };
}

/** The labelled baseline's training: SFT on the references, with the round's LoRA and the arm's overrides. */
export function labelledTrainRequest(spec: RunSpec, dataset: string, model: string): StageRequest<'train'> {
  const arm: Partial<LabelledArm> = spec.baselines?.labelledFineTuning ?? {};
  const training = {
    ...spec.training,
    algorithm: 'sft' as const,
    ...(arm.epochs !== undefined ? { epochs: arm.epochs } : {}),
    ...(arm.learningRate !== undefined ? { learningRate: arm.learningRate } : {}),
    ...(arm.maxSteps !== undefined ? { maxSteps: arm.maxSteps } : {}),
  };
  return trainRequest({ ...spec, training }, dataset, model);
}

/** The random-reward control's scorer: a reward drawn from a hash of (seed, prompt, sample), no information. */
export function randomScoreRequest(spec: RunSpec, prompts: string, generations: string): StageRequest<'score'> {
  const seed = spec.baselines?.randomReward?.seed ?? 0;
  const scoring = {
    scorers: [
      {
        name: 'random',
        type: 'python' as const,
        weight: 1,
        params: { module: 'tao_jobs.baselines:random_reward', args: { seed } },
      },
    ],
    tasks: {},
  };
  return scoreRequest({ ...spec, scoring }, prompts, generations);
}

/** Best-of-N's samples: N per held-out prompt from the base model, with the round's strategies and seed. */
export function bestOfNGenerateRequest(spec: RunSpec, heldOut: string, model: string): StageRequest<'generate'> {
  const n = spec.baselines?.bestOfN?.samplesPerPrompt ?? spec.generation.samplesPerPrompt;
  return generateRequest({ ...spec, generation: { ...spec.generation, samplesPerPrompt: n } }, heldOut, model);
}

/** What the store preflight checks before a round: the artifact root, prompts, held-out file, benchmark, model. */
export function preflightInput(spec: RunSpec): CheckStoreInput {
  const inputs: Record<string, string> = { prompts: spec.prompts.uri };
  if (spec.evaluation.heldOutUri) inputs.heldOut = spec.evaluation.heldOutUri;
  if (spec.evaluation.benchmarkUri) inputs.benchmark = spec.evaluation.benchmarkUri;
  // a model is a folder: a prefix that must list something
  if (!spec.baseModel.startsWith('tiny://')) inputs.baseModel = spec.baseModel.replace(/\/*$/, '/');
  return { artifacts: spec.artifacts, inputs };
}

/**
 * The jobs the spec's baseline arms run, in the order they run (workflows/baselines.ts): the labelled arm's
 * prepare and train, best-of-N's generate and score, random reward's score per shard, dataset and train. The
 * round counts them for progress; `tao render` prints them.
 */
export function armJobPlan(spec: RunSpec): { arm: BaselineArm; stage: JobStage; shard: number | null }[] {
  const a = spec.baselines ?? {};
  const each = (arm: BaselineArm, stages: JobStage[]) => stages.map((stage) => ({ arm, stage, shard: null }));
  const shards = Array.from({ length: spec.generation.shards }, (_, shard) => ({
    arm: 'randomReward' as const,
    stage: 'score' as const,
    shard,
  }));
  return [
    ...(a.labelledFineTuning ? each('labelledFineTuning', ['prepare', 'train']) : []),
    ...(a.bestOfN ? each('bestOfN', ['generate', 'score']) : []),
    ...(a.randomReward ? [...shards, ...each('randomReward', ['dataset', 'train'])] : []),
  ];
}
