/**
 * The promotion gate and where a promoted model is recorded. Pure, workflow-safe.
 *
 * `gateVerdict` decides on the evaluate stage's metrics (docs/evaluation.md): the rule's statistic of the
 * paired candidate − base difference on the evaluation's own metric (`mean`: its mean; `ciLower`: the lower
 * bound of its bootstrap 95% CI) must exceed `gate.minImprovement`; the same against the promoted model when
 * one was compared; in multi-task rounds no task's mean change may be below `-gate.maxTaskRegression`;
 * reward hacking (training reward up, independent metric flat or down) refuses unless `gate.rewardHacking`
 * is "allow"; `gate.promote` must be true. The first failing check decides. The evaluate stage applies the
 * same rules for its report (jobs/src/tao_jobs/eval_stats.py `gate_verdict`); both run the cases in
 * tests/fixtures/gate/cases.json.
 */
import type { RunSpec } from '../common/run-spec.js';
import type { GateCheck, GateDecision, PairedChange } from '../common/types.js';

export type { GateDecision } from '../common/types.js';

/** The evaluate stage's metrics the gate reads (the manifest has more: drift, per split, revs...). */
export interface GateMetrics {
  improvement: number;
  improvementCiLow?: number;
  improvementCiHigh?: number;
  vsPromoted?: Partial<PairedChange> & { compared?: boolean; uri?: string; sameAs?: string | null };
  tasks?: Record<string, PairedChange>;
  rewardHacking?: { flagged: boolean; checked?: boolean; reason: string };
}

/** The registry a round promotes into: `registry.uri`, else `<artifacts>/registry`. */
export function registryOf(spec: Pick<RunSpec, 'registry' | 'artifacts'>): string {
  return spec.registry?.uri ?? spec.artifacts.uri.replace(/\/+$/, '') + '/registry';
}

/**
 * The gate of rounds started before the independent evaluation (the `independent-evaluation` patch): tuned
 * mean minus base mean must exceed `gate.minImprovement`. Kept so those rounds replay and finish as they began.
 */
export function decideGate(spec: RunSpec, improvement: number): GateDecision {
  const min = spec.gate.minImprovement;
  if (!Number.isFinite(improvement)) return { passed: false, reason: 'evaluation produced no comparable scores' };
  if (improvement <= min) {
    return { passed: false, reason: `tuned improved by ${improvement.toFixed(4)}, not more than the required ${min}` };
  }
  if (!spec.gate.promote)
    return { passed: false, reason: 'gate passed but promotion is disabled (gate.promote=false)' };
  return { passed: true, reason: `tuned improved by ${improvement.toFixed(4)} > ${min}` };
}

const signed = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(4);
const versus = (ok: boolean) => (ok ? ' >' : ', not more than the required');
const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** The decision on the evaluation metrics: the checks in the module comment, the first failing one decides. */
export function gateVerdict(gate: RunSpec['gate'], m: GateMetrics): GateDecision {
  const { rule, minImprovement: threshold } = gate;
  const stat = rule === 'mean' ? m.improvement : m.improvementCiLow;
  const checks: GateCheck[] = [];
  if (!finite(stat)) {
    checks.push({ name: 'rule', passed: false, detail: 'evaluation produced no comparable scores' });
  } else {
    const what = rule === 'mean' ? 'mean change' : '95% CI lower bound of the change';
    const ok = stat > threshold;
    checks.push({
      name: 'rule',
      passed: ok,
      detail: `${rule}: ${what} ${signed(stat)}${versus(ok)} ${threshold}`,
    });
  }
  const vs = m.vsPromoted;
  if (vs?.compared) {
    const s = rule === 'mean' ? vs.change : vs.ciLow;
    const ok = finite(s) && s > threshold;
    const shown = finite(s) ? signed(s) : 'n/a';
    checks.push({
      name: 'promoted',
      passed: ok,
      detail: `${rule} vs the promoted model: ${shown}${versus(ok)} ${threshold}`,
    });
  }
  const tasks = Object.entries(m.tasks ?? {});
  if (tasks.length > 1) {
    const bound = gate.maxTaskRegression;
    const worst = tasks
      .filter(([, t]) => t.n)
      .map(([name, t]) => [t.change, name] as const)
      .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1));
    const bad = worst.filter(([c]) => c < -bound);
    const detail = bad.length
      ? `task '${bad[0]![1]}' regressed ${signed(bad[0]![0])} (bound -${bound})`
      : worst.length
        ? `no task below -${bound} (worst '${worst[0]![1]}' ${signed(worst[0]![0])})`
        : 'no task scored';
    checks.push({ name: 'tasks', passed: bad.length === 0, detail });
  }
  if (m.rewardHacking?.flagged) {
    const allowed = gate.rewardHacking === 'allow';
    checks.push({
      name: 'rewardHacking',
      passed: allowed,
      detail: `reward hacking${allowed ? ' (allowed by gate.rewardHacking)' : ''}: ${m.rewardHacking.reason}`,
    });
  }
  if (!gate.promote) {
    checks.push({ name: 'promote', passed: false, detail: 'promotion is disabled (gate.promote=false)' });
  }
  const failed = checks.find((c) => !c.passed);
  const decided = failed ?? checks[0]!;
  return {
    passed: failed === undefined,
    reason: decided.detail,
    rule,
    statistic: finite(stat) ? stat : null,
    threshold,
    decidedBy: decided.name,
    checks,
  };
}

/** One line for the `TaoGate` search attribute: `ciLower +0.0412 > 0: promote` / `... : refused (tasks)`. */
export function gateSummary(d: GateDecision): string {
  const stat = d.statistic === null || d.statistic === undefined ? 'n/a' : signed(d.statistic);
  const verdict = d.passed ? 'promote' : `refused (${d.decidedBy ?? 'rule'})`;
  return `${d.rule ?? 'mean'} ${stat} vs ${d.threshold ?? 0}: ${verdict}`;
}

/** The gate as Markdown for the Web UI's current details. */
export function gateMarkdown(d: GateDecision, m: GateMetrics & { reward?: Partial<PairedChange> }): string {
  const lines = [
    `### Gate: ${d.passed ? '✔ promote' : '✘ do not promote'} (rule \`${d.rule}\`, threshold ${d.threshold})`,
    `Decided by **${d.decidedBy}**: ${d.reason}`,
    ...(d.checks ?? []).map((c) => `- ${c.passed ? '✔' : '✘'} ${c.name}: ${c.detail}`),
  ];
  const r = m.reward;
  if (r && finite(r.change)) {
    lines.push(
      `Independent metric ${signed(m.improvement)} (95% CI ${finite(m.improvementCiLow) ? signed(m.improvementCiLow) : 'n/a'} – ` +
        `${finite(m.improvementCiHigh) ? signed(m.improvementCiHigh) : 'n/a'}) · training reward ${signed(r.change)}` +
        (m.rewardHacking?.flagged ? ' · **⚠ reward hacking**' : ''),
    );
  }
  return lines.join('\n');
}
