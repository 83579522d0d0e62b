/**
 * What the Web UI shows (docs/design.md#rule-10): search attributes kept current (find rounds by run name, stage and
 * stage status) and the workflow's current details as Markdown (stages, jobs, failures with their reason and
 * log, what the operator can do). Workflow-safe.
 */
import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { RunSpec } from '../common/run-spec.js';
import { SA } from '../common/search-attributes.js';
import type { RoundEvaluation, RoundProgress, RoundStage, StageFailure } from '../common/types.js';

export type StageStatusValue = 'running' | 'waiting-for-operator' | 'promoted' | 'not-promoted' | 'failed' | 'aborted';

export function announce(spec: RunSpec, configHash: string): void {
  upsertSearchAttributes([
    { key: SA.runName, value: spec.name },
    { key: SA.round, value: spec.round },
    { key: SA.model, value: spec.baseModel },
    { key: SA.configHash, value: configHash },
  ]);
}

export function showStage(stage: RoundStage | 'done', status: StageStatusValue): void {
  upsertSearchAttributes([
    { key: SA.stage, value: stage },
    { key: SA.stageStatus, value: status },
  ]);
}

export function showModel(uri: string): void {
  upsertSearchAttributes([{ key: SA.model, value: uri }]);
}

/** The gate's rule, numbers and verdict, searchable (`TaoGate STARTS_WITH "ciLower"`). */
export function showGate(summary: string): void {
  upsertSearchAttributes([{ key: SA.gate, value: summary }]);
}

function failureMarkdown(f: StageFailure, workflowId: string): string {
  const shard = f.shard === null ? '' : `, "shard": ${f.shard}`;
  return [
    `### ⚠ ${f.stage}${f.shard === null ? '' : `[${f.shard}]`} failed: ${f.type}`,
    `${f.reason ?? f.message.split('\n')[0]}`,
    f.logUri ? `Log: \`${f.logUri}\`` : '',
    f.logTail?.length ? '```\n' + f.logTail.slice(-10).join('\n') + '\n```' : '',
    `Waiting for an operator since ${f.at}. Fix the cause, then send the update **retryStage** ` +
      `(\`temporal workflow update execute --workflow-id ${workflowId} --name retryStage --input '{"stage": "${f.stage}"${shard}}'\`)` +
      (f.stage === 'generate' || f.stage === 'score' ? ', or **skipStage** to leave the shard out' : '') +
      ', or **abort**.',
  ]
    .filter(Boolean)
    .join('\n\n');
}

/** `notes`: extra Markdown blocks after the stage table (the gate's decision once it is made). */
export function showDetails(
  spec: RunSpec,
  workflowId: string,
  p: RoundProgress,
  links: Record<string, string>,
  notes: string[] = [],
): void {
  const rows = Object.entries(p.stages).map(([stage, s]) => {
    const jobs = `${s!.jobs ?? 0} ran, ${s!.reused ?? 0} reused`;
    const records = s!.recordsIn !== undefined ? `${s!.recordsIn} → ${s!.recordsOut}` : '';
    return `| ${stage} | ${s!.status} | ${s!.done}/${s!.total} | ${jobs} | ${records} | ${links[stage] ? `\`${links[stage]}\`` : ''} |`;
  });
  const gpus = Object.values(spec.executor.resources).reduce((n, r) => Math.max(n, r?.gpu ?? 0), 0);
  setCurrentDetails(
    [
      `## TAO round ${spec.round} of ${spec.name}: ${p.stage} (${p.percent}%)`,
      `Executor: ${spec.executor.type}${gpus ? `, up to ${gpus} GPU(s) per job` : ''} · artifacts: \`${spec.artifacts.uri}\``,
      '| stage | status | done | jobs | records in → out | output |',
      '| --- | --- | --- | --- | --- | --- |',
      ...rows,
      ...p.waiting.map((f) => failureMarkdown(f, workflowId)),
      ...notes,
    ].join('\n'),
  );
}

/** The baseline arms beside TAO, for the current details (the same numbers as the report's table). */
export function baselinesMarkdown(arms: NonNullable<RoundEvaluation['baselines']>): string {
  const n = (x: number | null | undefined, sign = false) =>
    typeof x === 'number' && Number.isFinite(x) ? (sign && x >= 0 ? '+' : '') + x.toFixed(3) : 'n/a';
  return [
    '### Baselines beside TAO (do not gate)',
    '| arm | mean | arm − base (95% CI) | TAO − arm (95% CI) |',
    '| --- | --- | --- | --- |',
    ...Object.entries(arms).map(
      ([arm, a]) =>
        `| ${arm} | ${n(a.score.mean)} | ${n(a.vsBase.change, true)} (${n(a.vsBase.ciLow, true)} – ${n(a.vsBase.ciHigh, true)}) | ` +
        `${n(a.taoVsArm.change, true)} (${n(a.taoVsArm.ciLow, true)} – ${n(a.taoVsArm.ciHigh, true)}) |`,
    ),
  ].join('\n');
}
