/**
 * What each stage job is asked to do, built from the run spec: the `inputs` and `params` of its stage spec
 * (common/stage-spec.ts, the JSON Schema the Python jobs validate against). Pure and workflow-safe.
 *
 * Typed by the stage-spec schema itself, so a param the job would refuse (exit 64 at run time) is a compile
 * error here instead. The params are part of each stage's memo key (docs/design.md#8-stages-are-memoized-through-manifests):
 * changing what a builder returns changes the keys of that stage and everything downstream.
 */
import type { JobStage, RunSpec } from '../common/run-spec.js';
import type { StageSpec } from '../common/stage-spec.js';

type SpecOf<S extends JobStage> = Extract<StageSpec, { stage: S }>;

/** One stage's request: the stage, its input URIs and its params, exactly as its stage spec carries them. */
export interface StageRequest<S extends JobStage = JobStage> {
  stage: S;
  inputs: SpecOf<S>['inputs'];
  params: SpecOf<S>['params'];
}

export function prepareRequest(spec: RunSpec): StageRequest<'prepare'> {
  const { evaluation } = spec;
  return {
    stage: 'prepare',
    inputs: {
      prompts: spec.prompts.uri,
      model: spec.baseModel,
      ...(evaluation.heldOutUri ? { heldOut: evaluation.heldOutUri } : {}),
    },
    params: {
      onInvalid: spec.prompts.onInvalid,
      shards: spec.generation.shards,
      seed: evaluation.seed,
      ...(evaluation.heldOutFraction !== undefined ? { heldOutFraction: evaluation.heldOutFraction } : {}),
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

export function evaluateRequest(
  spec: RunSpec,
  inputs: { prompts: string; base: string; tuned: string },
): StageRequest<'evaluate'> {
  return {
    stage: 'evaluate',
    inputs,
    params: {
      scoring: spec.scoring,
      samplesPerPrompt: spec.evaluation.samplesPerPrompt,
      temperature: spec.evaluation.temperature,
      maxTokens: spec.generation.maxTokens,
      seed: spec.evaluation.seed,
      bootstrap: 1000,
    },
  };
}
