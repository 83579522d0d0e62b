/**
 * `taoRound`: one TAO round. prepare → generate (fan-out over shards) → score (per shard, pipelined behind
 * its generate) → dataset → train → evaluate → gate → promote. Only references and small metrics cross
 * Temporal; every stage is memoized by its manifest, so a rerun, a retry or a reset re-runs only unfinished
 * work. A stage that fails for good waits for an operator (retryStage / skipStage / abort) instead of
 * throwing the round away.
 */
import {
  ActivityFailure,
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
import type { JobStage, RunSpec, RunSpecInput } from '../common/run-spec.js';
import type { RoundResult, RunStageInput, ScoreSummary, StageFailure, StageResult } from '../common/types.js';
import { validateRunSpec } from '../common/validate.js';
import { bookkeepingOptions, stageActivityOptions } from './activity-options.js';
import { abortUpdate, progressQuery, retryStageUpdate, skipStageUpdate } from './messages.js';
import { label, OperatorDesk } from './operator.js';
import { ProgressTracker } from './progress.js';
import { announce, showDetails, showModel, showStage } from './visibility.js';

const { promoteModel, recordRound } = proxyActivities<Activities>(bookkeepingOptions);

/** Returned by a guarded stage call that the operator chose to skip. */
const SKIPPED = Symbol('skipped');

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
      throw ApplicationFailure.create({ type: 'RoundAborted', message: desk.abortReason, nonRetryable: true });
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

async function runRound(spec: RunSpec, ctx: RoundContext): Promise<RoundResult> {
  const { workflowId, progress, desk, links, refresh } = ctx;
  // One proxy; each call passes its stage's own options (timeouts, summary) with executeWithOptions.
  const { runStage } = proxyActivities<Activities>(
    stageActivityOptions('prepare', spec.executor.heartbeatTimeoutSeconds),
  );

  /** Runs one stage (or shard) job; if it fails for good, waits for the operator's decision. */
  async function stage(
    name: JobStage,
    shard: RunStageInput['shard'],
    inputs: RunStageInput['inputs'],
    params: object,
  ): Promise<StageResult | typeof SKIPPED> {
    const summary = shard ? `${name} shard ${shard.index + 1}/${shard.count}` : name;
    for (;;) {
      try {
        const r = await runStage.executeWithOptions(
          { ...stageActivityOptions(name, spec.executor.heartbeatTimeoutSeconds), summary },
          [
            {
              run: { name: spec.name, round: spec.round, workflowId },
              stage: name,
              shard,
              inputs,
              params: params as Record<string, unknown>,
              artifacts: spec.artifacts,
              executor: spec.executor,
            },
          ],
        );
        progress.finished(name, r);
        links[name] = shard ? r.output.replace(/[^/]+\/$/, '') : r.output;
        refresh();
        return r;
      } catch (e) {
        if (isCancellation(e) || !spec.operator.waitOnFailure) throw e;
        const failure = describeFailure(e, name, shard?.index ?? null);
        progress.mark(name, 'failed');
        showStage(name, 'waiting-for-operator');
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
        progress.mark(name, 'running');
        showStage(name, 'running');
        refresh();
        if (decision.action === 'skip') {
          progress.skipped(name);
          return SKIPPED;
        }
      }
    }
  }
  const must = (r: StageResult | typeof SKIPPED): StageResult => {
    if (r === SKIPPED)
      throw ApplicationFailure.nonRetryable('a stage that cannot be skipped was skipped', 'InvalidOperatorAction');
    return r;
  };
  const str = (r: StageResult, name: string) => r.outputs[name] as string;
  const begin = (name: Parameters<ProgressTracker['begin']>[0], total = 1) => {
    progress.begin(name, total);
    showStage(name, 'running');
    refresh();
  };

  begin('prepare');
  const prepared = must(
    await stage(
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
    ),
  );
  const shardPrompts = prepared.outputs.prompts as string[];
  const baseModel = str(prepared, 'model');
  const { shards: _shards, ...generationParams } = spec.generation;

  // Each shard's score starts as soon as its own generate finishes: no barrier between the two stages.
  begin('generate', shardPrompts.length);
  progress.begin('score', shardPrompts.length);
  const skipped: string[] = [];
  const perShard = await Promise.all(
    shardPrompts.map(async (prompts, index) => {
      const shard = { index, count: shardPrompts.length };
      const gen = await stage('generate', shard, { prompts, model: baseModel }, generationParams);
      if (gen === SKIPPED) {
        skipped.push(`generate[${index}]`);
        progress.skipped('score');
        return null;
      }
      const score = await stage('score', shard, { prompts, generations: str(gen, 'generations') }, spec.scoring);
      if (score === SKIPPED) {
        skipped.push(`score[${index}]`);
        return null;
      }
      return { prompts, gen, score };
    }),
  );
  const kept = perShard.filter((s): s is NonNullable<typeof s> => s !== null);
  if (kept.length === 0) {
    throw ApplicationFailure.nonRetryable('every shard was skipped: nothing left to train on', 'NothingToTrainOn');
  }
  const generations = kept.map((s) => str(s.gen, 'generations'));
  const scores = kept.map((s) => str(s.score, 'scores'));

  begin('dataset');
  const dataset = must(
    await stage(
      'dataset',
      null,
      { prompts: kept.map((s) => s.prompts), generations, scores },
      {
        algorithm: spec.training.algorithm,
        minMargin: spec.training.minMargin,
        minScore: spec.training.minScore,
        ktoQuantile: spec.training.ktoQuantile,
      },
    ),
  );

  begin('train');
  const trained = must(
    await stage('train', null, { dataset: str(dataset, 'dataset'), model: baseModel }, spec.training),
  );
  const tuned = str(trained, 'merged');

  begin('evaluate');
  const evaluated = must(
    await stage(
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
    ),
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
      adapterUri: str(trained, 'adapter'),
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
    reusedStages: all.filter((r) => r.reused).map((r) => label(r.stage, r.shard)),
    skipped,
  };
  await recordRound({ result, artifacts: spec.artifacts });
  return result;
}

/** What the operator needs to see about a failed stage: type, the job's reason, the log tail and where the log is. */
function describeFailure(e: unknown, stage: JobStage, shard: number | null): StageFailure {
  const cause = e instanceof ActivityFailure ? e.cause : e;
  const app = cause instanceof ApplicationFailure ? cause : undefined;
  const detail = (app?.details?.[0] ?? {}) as { reason?: string; logTail?: string[]; logUri?: string };
  return {
    stage,
    shard,
    type: app?.type ?? 'StageFailed',
    message: (cause as Error | undefined)?.message ?? String(e),
    reason: detail.reason,
    logTail: detail.logTail?.slice(-20),
    logUri: detail.logUri,
    at: new Date().toISOString(),
  };
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
