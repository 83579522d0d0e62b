/** Starting, following and summarising rounds from the `tao` CLI (the same calls `temporal workflow ...` makes). */
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import { ROUND_WORKFLOW, roundWorkflowId } from '../../common/constants.js';
import { taskQueue } from '../../workers/config.js';
import type { RunSpec } from '../../common/run-spec.js';
import type { RoundProgress, RoundResult } from '../../common/types.js';
import { progressQuery } from '../../workflows/messages.js';

export function uiBase(): string {
  return process.env.TAO_UI_URL ?? 'http://127.0.0.1:8233';
}

export function uiLink(
  workflowId: string,
  runId?: string,
  namespace = process.env.TEMPORAL_NAMESPACE ?? 'default',
): string {
  return `${uiBase()}/namespaces/${namespace}/workflows/${encodeURIComponent(workflowId)}${runId ? `/${runId}/history` : ''}`;
}

/**
 * Starts a round. A finished round with the same id may run again (its stages are reused from their
 * manifests); a round that is still running is attached to rather than duplicated.
 */
export async function startRound(client: Client, document: unknown, spec: RunSpec, workflowId?: string) {
  return client.workflow.start(ROUND_WORKFLOW, {
    taskQueue: taskQueue(),
    workflowId: workflowId ?? roundWorkflowId(spec.name, spec.round),
    args: [document],
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    staticSummary: `TAO round ${spec.round} of ${spec.name}`,
    staticDetails: `base model: ${spec.baseModel}\nprompts: ${spec.prompts.uri}\nartifacts: ${spec.artifacts.uri}`,
  });
}

const BAR = 24;
function bar(done: number, total: number): string {
  const filled = total > 0 ? Math.round((BAR * done) / total) : 0;
  return '█'.repeat(filled) + '░'.repeat(BAR - filled);
}

export function renderProgress(p: RoundProgress): string {
  const lines = [`round: ${p.stage} ${p.percent}%`];
  for (const [stage, s] of Object.entries(p.stages)) {
    if (!s) continue;
    const note = s.status === 'reused' ? ' (reused)' : s.reused ? ` (${s.reused} reused)` : '';
    lines.push(`  ${stage.padEnd(9)} ${bar(s.done, s.total)} ${s.done}/${s.total} ${s.status}${note}`);
  }
  return lines.join('\n');
}

/** Polls the `progress` query until the workflow closes, redrawing on a TTY or printing changes otherwise. */
export async function follow(handle: WorkflowHandle, out: NodeJS.WriteStream = process.stderr): Promise<void> {
  let previous = '';
  let drawn = 0;
  for (;;) {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') return;
    const p = await handle.query(progressQuery).catch(() => null);
    if (p) {
      const text = renderProgress(p);
      if (text !== previous) {
        if (out.isTTY && drawn) out.write(`\x1b[${drawn}A\x1b[0J`);
        out.write(text + '\n');
        drawn = text.split('\n').length;
        previous = text;
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const f3 = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const sf = (x: number | null | undefined) =>
  typeof x === 'number' && Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(3) : 'n/a';

/** The gate's rule and numbers, which scorers judged, the training reward beside them, drift (issue 10). */
function evidence(r: RoundResult): string[] {
  const e = r.evaluation;
  const g = r.gate;
  if (!g.rule) return [];
  const verdict = g.passed ? 'promote' : `refused by ${g.decidedBy}`;
  const judged =
    e.scorers === 'evaluation'
      ? "the evaluation's own scorers"
      : 'the training scorers (evaluation.reuseTrainingScorers: not independent)';
  return [
    `  gate            rule ${g.rule}: ${sf(g.statistic)} vs ${g.threshold} -> ${verdict}`,
    `  judged by       ${judged}; 95% CI of the change [${sf(e.improvementCiLow)}, ${sf(e.improvementCiHigh)}]`,
    e.reward
      ? `  training reward ${sf(e.reward.change)} [${sf(e.reward.ciLow)}, ${sf(e.reward.ciHigh)}]` +
        (e.rewardHacking?.flagged ? `  REWARD HACKING: ${e.rewardHacking.reason}` : '')
      : '',
    e.drift
      ? `  drift           length ${sf(e.drift.lengthChange)} (relative), format ${sf(e.drift.formatDrift)}, KL to base ${e.klToBase === null || e.klToBase === undefined ? 'n/a' : e.klToBase.toFixed(4)}`
      : '',
    ...Object.entries(e.tasks ?? {}).map(
      ([task, t]) => `  task ${task.padEnd(10)} ${sf(t.change)} [${sf(t.ciLow)}, ${sf(t.ciHigh)}] n=${t.n}`,
    ),
    ...baselineLines(r),
  ].filter(Boolean);
}

/** Each baseline arm the round ran: its score, arm − base and TAO − arm, with their CIs. */
export function baselineLines(r: RoundResult): string[] {
  return Object.entries(r.evaluation.baselines ?? {}).map(
    ([arm, b]) =>
      `  baseline ${arm.padEnd(18)} ${f3(b.score.mean)} [${f3(b.score.ciLow)}, ${f3(b.score.ciHigh)}]` +
      `  vs base ${sf(b.vsBase.change)} [${sf(b.vsBase.ciLow)}, ${sf(b.vsBase.ciHigh)}]` +
      `  TAO - arm ${sf(b.taoVsArm.change)} [${sf(b.taoVsArm.ciLow)}, ${sf(b.taoVsArm.ciHigh)}] n=${b.vsBase.n}`,
  );
}

export function summarise(r: RoundResult, runId?: string): string {
  const f = (x: number) => x.toFixed(3);
  const e = r.evaluation;
  return [
    headline(r),
    `  held-out score  base ${f(e.base.mean)} [${f(e.base.ciLow)}, ${f(e.base.ciHigh)}]  tuned ${f(e.tuned.mean)} [${f(e.tuned.ciLow)}, ${f(e.tuned.ciHigh)}]  (${sf(e.improvement)}${e.winRate !== undefined ? `, win rate ${f(e.winRate)}` : ''})`,
    ...evidence(r),
    ...whereToLook(r, runId),
  ]
    .filter(Boolean)
    .join('\n');
}

/** The round's verdict in one line. */
export function headline(r: RoundResult): string {
  return `round ${r.round} of ${r.runName}: ${r.promoted ? 'PROMOTED' : 'not promoted'} (${r.gate.reason})`;
}

/** Where the round's outputs are: the tuned model, the report, the registry, what was reused, the Web UI. */
export function whereToLook(r: RoundResult, runId?: string): string[] {
  return [
    `  tuned model     ${r.tunedModel}`,
    `  report          ${r.artifacts.report}`,
    r.registryPointer ? `  registry        ${r.registryPointer}` : '',
    r.reusedStages.length
      ? `  reused from earlier runs (not re-run): ${r.reusedStages.join(', ')}`
      : '  every stage ran (nothing to reuse)',
    `  Temporal Web UI ${uiLink(r.workflowId, runId)}`,
  ].filter(Boolean);
}
