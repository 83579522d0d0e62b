/**
 * `taoRound`: one TAO round. prepare → generate (fan-out over shards) → score (per shard, pipelined behind
 * its generate) → dataset → train → evaluate → gate → promote. Only references and small metrics cross
 * Temporal; every stage is memoized by its manifest, so a rerun, a retry or a reset re-runs only unfinished
 * work.
 */
import { ApplicationFailure, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureType } from '../common/errors.js';
import { canonicalJson, fnv1a64 } from '../common/hash.js';
import type { JobStage, RunSpec, RunSpecInput } from '../common/run-spec.js';
import type { RoundResult, RunStageInput, ScoreSummary, StageResult } from '../common/types.js';
import { validateRunSpec } from '../common/validate.js';
import { bookkeepingOptions, stageActivityOptions } from './activity-options.js';
import { progressQuery } from './messages.js';
import { ProgressTracker } from './progress.js';

const { promoteModel, recordRound } = proxyActivities<Activities>(bookkeepingOptions);

export async function taoRound(input: RunSpecInput): Promise<RoundResult> {
  const checked = validateRunSpec(input);
  if (!checked.ok) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidRunSpec,
      message: `invalid run spec:\n${checked.errors.join('\n')}`,
      nonRetryable: true,
      details: checked.errors,
    });
  }
  const spec = checked.spec;
  const { workflowId } = workflowInfo();
  const progress = new ProgressTracker();
  setHandler(progressQuery, () => progress.snapshot());

  const activities = new Map<JobStage, Activities['runStage']>();
  const runStage = (
    stage: JobStage,
    shard: RunStageInput['shard'],
    inputs: RunStageInput['inputs'],
    params: object,
  ) => {
    let act = activities.get(stage);
    if (!act) {
      act = proxyActivities<Activities>(stageActivityOptions(stage, spec.executor.heartbeatTimeoutSeconds)).runStage;
      activities.set(stage, act);
    }
    return act({
      run: { name: spec.name, round: spec.round, workflowId },
      stage,
      shard,
      inputs,
      params: params as Record<string, unknown>,
      artifacts: spec.artifacts,
      executor: spec.executor,
    }).then((r) => {
      progress.finished(stage, r);
      return r;
    });
  };
  const str = (r: StageResult, name: string) => r.outputs[name] as string;

  progress.begin('prepare');
  const prepared = await runStage(
    'prepare',
    null,
    {
      prompts: spec.prompts.uri,
      model: spec.baseModel,
      ...(spec.evaluation.heldOutUri ? { heldOut: spec.evaluation.heldOutUri } : {}),
    },
    {
      onInvalid: spec.prompts.onInvalid,
      shards: spec.generation.shards,
      seed: spec.evaluation.seed,
      ...(spec.evaluation.heldOutFraction !== undefined ? { heldOutFraction: spec.evaluation.heldOutFraction } : {}),
    },
  );
  const shardPrompts = prepared.outputs.prompts as string[];
  const baseModel = str(prepared, 'model');
  const { shards: _shards, ...generationParams } = spec.generation;

  // Each shard's score starts as soon as its own generate finishes: no barrier between the two stages.
  progress.begin('generate', shardPrompts.length);
  progress.begin('score', shardPrompts.length);
  const perShard = await Promise.all(
    shardPrompts.map(async (prompts, index) => {
      const shard = { index, count: shardPrompts.length };
      const gen = await runStage('generate', shard, { prompts, model: baseModel }, generationParams);
      const score = await runStage('score', shard, { prompts, generations: str(gen, 'generations') }, spec.scoring);
      return { gen, score };
    }),
  );
  const generations = perShard.map((s) => str(s.gen, 'generations'));
  const scores = perShard.map((s) => str(s.score, 'scores'));

  progress.begin('dataset');
  const dataset = await runStage(
    'dataset',
    null,
    { prompts: shardPrompts, generations, scores },
    { algorithm: spec.training.algorithm, minMargin: spec.training.minMargin },
  );

  progress.begin('train');
  const trained = await runStage('train', null, { dataset: str(dataset, 'dataset'), model: baseModel }, spec.training);
  const tuned = str(trained, 'merged');

  progress.begin('evaluate');
  const evaluated = await runStage(
    'evaluate',
    null,
    { prompts: str(prepared, 'heldOut'), base: baseModel, tuned },
    {
      scoring: spec.scoring,
      samplesPerPrompt: spec.evaluation.samplesPerPrompt,
      temperature: spec.evaluation.temperature,
      maxTokens: spec.generation.maxTokens,
      seed: spec.evaluation.seed,
      bootstrap: 1000,
    },
  );
  const m = evaluated.metrics as { base: ScoreSummary; tuned: ScoreSummary; improvement: number; winRate?: number };

  progress.begin('gate');
  const gate = decideGate(spec, m.improvement);
  progress.end('gate');

  progress.begin('promote');
  let registryPointer: string | null = null;
  if (gate.passed) {
    const promoted = await promoteModel({
      registry: registryOf(spec),
      runName: spec.name,
      round: spec.round,
      workflowId,
      modelUri: tuned,
      adapterUri: str(trained, 'adapter'),
      baseModelUri: baseModel,
      evaluation: { base: m.base, tuned: m.tuned, improvement: m.improvement },
      artifacts: spec.artifacts,
    });
    registryPointer = promoted.pointer;
    progress.end('promote');
  } else {
    progress.end('promote', 'skipped');
  }

  const all: StageResult[] = [prepared, ...perShard.flatMap((s) => [s.gen, s.score]), dataset, trained, evaluated];
  progress.finish();
  const result: RoundResult = {
    workflowId,
    runName: spec.name,
    round: spec.round,
    specHash: fnv1a64(canonicalJson(spec)),
    baseModel,
    tunedModel: tuned,
    stages: progress.snapshot().stages,
    artifacts: {
      prompts: shardPrompts,
      heldOut: str(prepared, 'heldOut'),
      generations,
      scores,
      dataset: str(dataset, 'dataset'),
      adapter: str(trained, 'adapter'),
      merged: tuned,
      report: str(evaluated, 'report'),
    },
    evaluation: { base: m.base, tuned: m.tuned, improvement: m.improvement, winRate: m.winRate },
    gate,
    promoted: gate.passed,
    registryPointer,
    reusedStages: all.filter((r) => r.reused).map((r) => (r.shard === null ? r.stage : `${r.stage}[${r.shard}]`)),
  };
  await recordRound({ result, artifacts: spec.artifacts });
  return result;
}

export function registryOf(spec: RunSpec): string {
  return spec.registry?.uri ?? spec.artifacts.uri.replace(/\/+$/, '') + '/registry';
}

/** Promote only if tuned beats base by more than the configured margin (and promotion is enabled). */
export function decideGate(spec: RunSpec, improvement: number): { passed: boolean; reason: string } {
  const min = spec.gate.minImprovement;
  if (!Number.isFinite(improvement)) return { passed: false, reason: 'evaluation produced no comparable scores' };
  if (improvement <= min) {
    return { passed: false, reason: `tuned improved by ${improvement.toFixed(4)}, not more than the required ${min}` };
  }
  if (!spec.gate.promote)
    return { passed: false, reason: 'gate passed but promotion is disabled (gate.promote=false)' };
  return { passed: true, reason: `tuned improved by ${improvement.toFixed(4)} > ${min}` };
}
