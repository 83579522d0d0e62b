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
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { FailureType } from '../common/errors.js';
import { canonicalJson, fnv1a64 } from '../common/hash.js';
import type { RunSpec, RunSpecInput } from '../common/run-spec.js';
import type { RoundEvaluation, RoundResult, StageResult } from '../common/types.js';
import { validateRunSpec } from '../common/validate.js';
import { bookkeepingOptions } from './activity-options.js';
import { baselineArms } from './baselines.js';
import { decideGate, gateMarkdown, gateSummary, gateVerdict, registryOf, type GateMetrics } from './gate.js';
import { guardedStages, out, required, SKIPPED } from './guarded-stage.js';
import { abortUpdate, progressQuery, retryStageUpdate, skipStageUpdate } from './messages.js';
import { label, OperatorDesk } from './operator.js';
import { ProgressTracker } from './progress.js';
import {
  datasetRequest,
  evaluateRequest,
  preflightInput,
  generateRequest,
  prepareRequest,
  scoreRequest,
  trainRequest,
} from './stage-params.js';
import { announce, baselinesMarkdown, showDetails, showGate, showModel, showStage } from './visibility.js';

const { checkStore, promoteModel, readPromoted, recordRound } = proxyActivities<Activities>(bookkeepingOptions);

export async function taoRound(input: RunSpecInput): Promise<RoundResult> {
  // Rounds started before the evaluation had its own scorers, references and gate rule (issue 10) replay and
  // finish with the rules they began with: no explicit evaluation choice required, the old stage params, the
  // old gate. New rounds record this marker first.
  const independent = patched('independent-evaluation');
  const checked = validateRunSpec(input, { legacy: !independent });
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
  const notes: string[] = [];
  const refresh = () => showDetails(spec, workflowId, progress.snapshot(desk.failures()), links, notes);
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
    return await round.run(() =>
      runRound(spec, { workflowId, configHash, progress, desk, links, notes, refresh, independent }),
    );
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
  /** Markdown blocks shown after the stage table in the Web UI (the gate's decision). */
  notes: string[];
  refresh: () => void;
  /** False for rounds started before the independent evaluation (see the patch in taoRound). */
  independent: boolean;
}

/** The pipeline; each stage's inputs and params come from stage-params.ts, each call is operator-guarded. */
async function runRound(spec: RunSpec, ctx: RoundContext): Promise<RoundResult> {
  const { workflowId, progress, refresh, independent } = ctx;
  const legacy = { legacy: !independent };
  const stage = guardedStages({ spec, ...ctx });
  const begin = (name: Parameters<ProgressTracker['begin']>[0], total = 1) => {
    progress.begin(name, total);
    showStage(name, 'running');
    refresh();
  };

  // The store preflight: a wrong endpoint, bucket or credentials fail the round here, before any job runs.
  // Patched so histories recorded before it replay as they ran.
  if (patched('store-preflight')) await checkStore(preflightInput(spec));

  // The baseline arms (workflows/baselines.ts): the labelled arm's dataset before anything else.
  const arms = baselineArms({ spec, stage, progress, begin, refresh });
  await arms.labelledDataset();

  begin('prepare');
  const prepared = required(await stage(prepareRequest(spec, legacy)));
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

  // The other arms, after TAO's own training.
  const armOutputs = await arms.afterTraining(prepared, kept, baseModel);

  begin('evaluate');
  const promotedModel = independent ? await currentModel(spec, [baseModel, tuned]) : undefined;
  const evaluated = required(
    await stage(
      evaluateRequest(
        spec,
        {
          prompts: out(prepared, 'heldOut'),
          benchmark: prepared.outputs.benchmark as string | undefined,
          base: baseModel,
          tuned,
          promoted: promotedModel,
          ...armOutputs,
        },
        legacy,
      ),
    ),
  );
  const m = evaluated.metrics as unknown as RoundEvaluation & GateMetrics & { evaluationScorers?: string };

  begin('gate');
  const gate = independent ? gateVerdict(spec.gate, m) : decideGate(spec, m.improvement);
  if (independent) {
    showGate(gateSummary(gate));
    ctx.notes.push(gateMarkdown(gate, m));
    if (m.baselines && Object.keys(m.baselines).length) ctx.notes.push(baselinesMarkdown(m.baselines));
  }
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
      ...(arms.jobs > 0 ? { baselines: armOutputs } : {}),
    },
    evaluation: independent
      ? evaluationOf(m)
      : { base: m.base, tuned: m.tuned, improvement: m.improvement, winRate: m.winRate },
    gate,
    promoted: gate.passed,
    registryPointer,
    reusedStages: [...all.filter((r) => r.reused).map((r) => label(r.stage, r.shard)), ...arms.reused],
    skipped,
  };
  await recordRound({ result, artifacts: spec.artifacts });
  return result;
}

/** The promoted model of this run, when the registry has one other than `exclude` (base and candidate). */
async function currentModel(spec: RunSpec, exclude: string[]): Promise<string | undefined> {
  const pointer = await readPromoted({ registry: registryOf(spec), runName: spec.name, artifacts: spec.artifacts });
  return pointer && !exclude.includes(pointer.modelUri) ? pointer.modelUri : undefined;
}

/** The evaluation as the result carries it: small numbers only (the report and manifest hold the rest). */
function evaluationOf(
  m: RoundEvaluation & { evaluationScorers?: string; drift?: { lengthChange: number; formatDrift: number } },
): RoundEvaluation {
  return {
    base: m.base,
    tuned: m.tuned,
    improvement: m.improvement,
    improvementCiLow: m.improvementCiLow,
    improvementCiHigh: m.improvementCiHigh,
    winRate: m.winRate,
    scorers: m.evaluationScorers === 'evaluation' ? 'evaluation' : 'training',
    reward: m.reward && { change: m.reward.change, ciLow: m.reward.ciLow, ciHigh: m.reward.ciHigh, n: m.reward.n },
    rewardHacking: m.rewardHacking && {
      flagged: m.rewardHacking.flagged,
      checked: m.rewardHacking.checked,
      reason: m.rewardHacking.reason,
    },
    tasks: m.tasks,
    vsPromoted: m.vsPromoted,
    drift: m.drift && { lengthChange: m.drift.lengthChange, formatDrift: m.drift.formatDrift },
    klToBase: m.klToBase ?? null,
    ...(m.baselines && Object.keys(m.baselines).length ? { baselines: m.baselines } : {}),
  };
}
