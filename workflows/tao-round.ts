/**
 * `taoRound`: one TAO round. prepare → generate (fan-out over shards) → score (per shard, pipelined behind
 * its generate) → dataset → train → evaluate → gate → promote. Only references and small metrics cross
 * Temporal; every stage is memoized by its manifest, so a rerun, a retry or a reset re-runs only unfinished
 * work. A stage that fails for good waits for an operator (retryStage / skipStage / abort) instead of
 * throwing the round away.
 */
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureType } from '../common/errors.js';
import { canonicalJson, fnv1a64 } from '../common/hash.js';
import type { RunSpec, RunSpecInput } from '../common/run-spec.js';
import type { RoundResult, ScoreSummary, StageResult } from '../common/types.js';
import { validateRunSpec } from '../common/validate.js';
import { bookkeepingOptions } from './activity-options.js';
import { decideGate, registryOf } from './gate.js';
import { guardedStages, required, SKIPPED } from './guarded-stage.js';
import { abortUpdate, progressQuery, retryStageUpdate, skipStageUpdate } from './messages.js';
import { label, OperatorDesk } from './operator.js';
import { ProgressTracker } from './progress.js';
import {
  datasetRequest,
  evaluateRequest,
  generateRequest,
  prepareRequest,
  scoreRequest,
  trainRequest,
} from './stage-params.js';
import { announce, showDetails, showModel, showStage } from './visibility.js';

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
  const configHash = fnv1a64(canonicalJson(spec));
  const progress = new ProgressTracker();
  const desk = new OperatorDesk();
  const links: Record<string, string> = {};
  const refresh = () => showDetails(spec, workflowId, progress.snapshot(desk.failures()), links);
  const round = new CancellationScope();

  setHandler(progressQuery, () => progress.snapshot(desk.failures()));
  setHandler(retryStageUpdate, (a) => ({ applied: desk.decide('retry', a) }), {
    validator: (a) => desk.validate('retry', a),
  });
  setHandler(skipStageUpdate, (a) => ({ applied: desk.decide('skip', a) }), {
    validator: (a) => desk.validate('skip', a),
  });
  setHandler(abortUpdate, (a) => {
    desk.abortReason = a?.reason || 'aborted by operator';
    round.cancel();
    return { applied: desk.failures().map((f) => label(f.stage, f.shard)) };
  });
  announce(spec, configHash);

  try {
    return await round.run(() => runRound(spec, { workflowId, configHash, progress, desk, links, refresh }));
  } catch (e) {
    if (desk.abortReason !== undefined && isCancellation(e)) {
      showStage(progress.snapshot().stage, 'aborted');
      throw ApplicationFailure.create({
        type: FailureType.RoundAborted,
        message: desk.abortReason,
        nonRetryable: true,
      });
    }
    if (!isCancellation(e)) showStage(progress.snapshot().stage, 'failed');
    throw e;
  }
}

interface RoundContext {
  workflowId: string;
  configHash: string;
  progress: ProgressTracker;
  desk: OperatorDesk;
  links: Record<string, string>;
  refresh: () => void;
}

/** The pipeline; each stage's inputs and params come from stage-params.ts, each call is operator-guarded. */
async function runRound(spec: RunSpec, ctx: RoundContext): Promise<RoundResult> {
  const { workflowId, progress, refresh } = ctx;
  const stage = guardedStages({ spec, ...ctx });
  const out = (r: StageResult, name: string) => r.outputs[name] as string;
  const begin = (name: Parameters<ProgressTracker['begin']>[0], total = 1) => {
    progress.begin(name, total);
    showStage(name, 'running');
    refresh();
  };

  begin('prepare');
  const prepared = required(await stage(prepareRequest(spec)));
  const shardPrompts = prepared.outputs.prompts as string[];
  const baseModel = out(prepared, 'model');

  // Each shard's score starts as soon as its own generate finishes: no barrier between the two stages.
  begin('generate', shardPrompts.length);
  progress.begin('score', shardPrompts.length);
  const skipped: string[] = [];
  const perShard = await Promise.all(
    shardPrompts.map(async (prompts, index) => {
      const shard = { index, count: shardPrompts.length };
      const gen = await stage(generateRequest(spec, prompts, baseModel), shard);
      if (gen === SKIPPED) {
        skipped.push(`generate[${index}]`);
        progress.skipped('score');
        return null;
      }
      const score = await stage(scoreRequest(spec, prompts, out(gen, 'generations')), shard);
      if (score === SKIPPED) {
        skipped.push(`score[${index}]`);
        return null;
      }
      return { prompts, gen, score };
    }),
  );
  const kept = perShard.filter((s): s is NonNullable<typeof s> => s !== null);
  if (kept.length === 0) {
    throw ApplicationFailure.nonRetryable(
      'every shard was skipped: nothing left to train on',
      FailureType.NothingToTrainOn,
    );
  }
  const generations = kept.map((s) => out(s.gen, 'generations'));
  const scores = kept.map((s) => out(s.score, 'scores'));

  begin('dataset');
  const dataset = required(
    await stage(datasetRequest(spec, { prompts: kept.map((s) => s.prompts), generations, scores })),
  );

  begin('train');
  const trained = required(await stage(trainRequest(spec, out(dataset, 'dataset'), baseModel)));
  const tuned = out(trained, 'merged');

  begin('evaluate');
  const evaluated = required(
    await stage(evaluateRequest(spec, { prompts: out(prepared, 'heldOut'), base: baseModel, tuned })),
  );
  const m = evaluated.metrics as { base: ScoreSummary; tuned: ScoreSummary; improvement: number; winRate?: number };

  begin('gate');
  const gate = decideGate(spec, m.improvement);
  progress.end('gate');

  begin('promote');
  let registryPointer: string | null = null;
  if (gate.passed) {
    const promoted = await promoteModel({
      registry: registryOf(spec),
      runName: spec.name,
      round: spec.round,
      workflowId,
      modelUri: tuned,
      adapterUri: out(trained, 'adapter'),
      baseModelUri: baseModel,
      evaluation: { base: m.base, tuned: m.tuned, improvement: m.improvement },
      artifacts: spec.artifacts,
    });
    registryPointer = promoted.pointer;
    progress.end('promote');
    showModel(tuned);
  } else {
    progress.end('promote', 'skipped');
  }

  const all: StageResult[] = [prepared, ...kept.flatMap((s) => [s.gen, s.score]), dataset, trained, evaluated];
  progress.finish();
  showStage('done', gate.passed ? 'promoted' : 'not-promoted');
  refresh();
  const result: RoundResult = {
    workflowId,
    runName: spec.name,
    round: spec.round,
    specHash: ctx.configHash,
    baseModel,
    tunedModel: tuned,
    stages: progress.snapshot().stages,
    artifacts: {
      prompts: shardPrompts,
      heldOut: out(prepared, 'heldOut'),
      generations,
      scores,
      dataset: out(dataset, 'dataset'),
      adapter: out(trained, 'adapter'),
      merged: tuned,
      report: out(evaluated, 'report'),
    },
    evaluation: { base: m.base, tuned: m.tuned, improvement: m.improvement, winRate: m.winRate },
    gate,
    promoted: gate.passed,
    registryPointer,
    reusedStages: all.filter((r) => r.reused).map((r) => label(r.stage, r.shard)),
    skipped,
  };
  await recordRound({ result, artifacts: spec.artifacts });
  return result;
}
