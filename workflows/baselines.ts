/**
 * The baseline arms of a round (`spec.baselines`, docs/evaluation.md#baselines, decision 0005): memoized stages
 * of the round like TAO's own, counted under its progress entry `baselines` and labelled with their arm. The
 * labelled arm's dataset runs before TAO's prepare, so a round whose training prompts lack the references it
 * needs stops before any other job; the other arms run after TAO's train, one at a time (they share the machine
 * with nothing else then). Evaluate scores what they produced beside base and candidate.
 */
import type { BaselineArm, JobStage, RunSpec } from '../common/run-spec.js';
import type { RunStageInput, StageResult } from '../common/types.js';
import { out, required, SKIPPED, type guardedStages } from './guarded-stage.js';
import { label } from './operator.js';
import type { ProgressTracker } from './progress.js';
import {
  armJobPlan,
  bestOfNGenerateRequest,
  datasetRequest,
  labelledTrainRequest,
  labelsRequest,
  randomScoreRequest,
  scoreRequest,
  trainRequest,
  type EvaluateInputs,
  type StageRequest,
} from './stage-params.js';
import { showStage } from './visibility.js';

export type ArmOutputs = Pick<
  EvaluateInputs,
  'labelledFineTuning' | 'randomReward' | 'bestOfNGenerations' | 'bestOfNScores'
>;

/** One shard of TAO's own generate → score, as the random-reward arm rescores it. */
export interface KeptShard {
  prompts: string;
  gen: StageResult;
}

interface ArmsContext {
  spec: RunSpec;
  stage: ReturnType<typeof guardedStages>;
  progress: ProgressTracker;
  /** Starts a progress entry (and shows it running). */
  begin: (name: 'baselines', total: number) => void;
  refresh: () => void;
}

export function baselineArms(ctx: ArmsContext) {
  const { spec, stage, progress, refresh } = ctx;
  const arms = spec.baselines ?? {};
  const jobs = armJobPlan(spec).length;
  /** `arm:stage[shard]` of each arm stage reused from an earlier run, for the round's result. */
  const reused: string[] = [];
  const labels = labelsRequest(spec);
  let labelled: string | undefined;

  const armStage = async <S extends JobStage>(
    arm: BaselineArm,
    request: StageRequest<S>,
    shard: RunStageInput['shard'] = null,
  ) => {
    const r = await stage(request, shard, { arm });
    if (r !== SKIPPED && r.reused) reused.push(`${arm}:${label(r.stage, r.shard)}`);
    return r;
  };

  return {
    /** How many jobs the arms run (0: the spec asks for none). */
    jobs,
    reused,

    /** Before TAO's prepare: the labelled arm's dataset (references of the training prompts), when asked for. */
    async labelledDataset(): Promise<void> {
      if (!labels) return;
      ctx.begin('baselines', jobs);
      labelled = out(required(await armStage('labelledFineTuning', labels)), 'labelledSft');
    },

    /** After TAO's train: every other arm stage; what evaluate needs of them. */
    async afterTraining(prepared: StageResult, kept: KeptShard[], baseModel: string): Promise<ArmOutputs> {
      const outputs: ArmOutputs = {};
      if (jobs === 0) return outputs;
      if (labels) {
        progress.resume('baselines');
        showStage('baselines', 'running');
        refresh();
      } else ctx.begin('baselines', jobs);
      if (labelled) {
        const t = required(await armStage('labelledFineTuning', labelledTrainRequest(spec, labelled, baseModel)));
        outputs.labelledFineTuning = out(t, 'merged');
      }
      if (arms.bestOfN) {
        const heldOut = out(prepared, 'heldOut');
        const g = await armStage('bestOfN', bestOfNGenerateRequest(spec, heldOut, baseModel));
        const sc =
          g === SKIPPED ? SKIPPED : await armStage('bestOfN', scoreRequest(spec, heldOut, out(g, 'generations')));
        if (g !== SKIPPED && sc !== SKIPPED) {
          outputs.bestOfNGenerations = out(g, 'generations');
          outputs.bestOfNScores = out(sc, 'scores');
        }
      }
      if (arms.randomReward) {
        // the TAO arm's own generations, rescored at random; then the same dataset and training settings
        const rescored = [];
        for (const [index, s] of kept.entries()) {
          const shard = { index, count: kept.length };
          const generations = out(s.gen, 'generations');
          const r = await armStage('randomReward', randomScoreRequest(spec, s.prompts, generations), shard);
          if (r !== SKIPPED) rescored.push({ prompts: s.prompts, generations, scores: out(r, 'scores') });
        }
        if (rescored.length > 0) {
          const d = required(
            await armStage(
              'randomReward',
              datasetRequest(spec, {
                prompts: rescored.map((r) => r.prompts),
                generations: rescored.map((r) => r.generations),
                scores: rescored.map((r) => r.scores),
              }),
            ),
          );
          const t = required(await armStage('randomReward', trainRequest(spec, out(d, 'dataset'), baseModel)));
          outputs.randomReward = out(t, 'merged');
        }
      }
      progress.end('baselines');
      return outputs;
    },
  };
}
