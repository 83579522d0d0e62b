/**
 * The gate (workflows/gate.ts) on the cases the evaluate stage's report also runs (tests/fixtures/gate/), its
 * one-line summary for the TaoGate search attribute, and the prepare/evaluate requests that carry the
 * independent evaluation to the jobs (workflows/stage-params.ts), legacy rounds keeping their old params.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RunSpecSchema, type RunSpec } from '../../common/run-spec.js';
import { StageSpecSchema } from '../../common/stage-spec.js';
import type { RoundResult } from '../../common/types.js';
import { summarise } from '../../scripts/cli/round.js';
import { gateMarkdown, gateSummary, gateVerdict, type GateMetrics } from '../../workflows/gate.js';
import { evaluateRequest, prepareRequest } from '../../workflows/stage-params.js';

interface Case {
  name: string;
  gate: Partial<RunSpec['gate']>;
  metrics: GateMetrics;
  passed: boolean;
  decidedBy: string;
  statistic: number | null;
  reason?: string;
}
const fixture = JSON.parse(readFileSync('tests/fixtures/gate/cases.json', 'utf8')) as {
  defaults: RunSpec['gate'];
  cases: Case[];
};

describe('gate verdict: the shared cases (the Python report runs them too)', () => {
  it.each(fixture.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const d = gateVerdict({ ...fixture.defaults, ...c.gate }, c.metrics);
    expect({ passed: d.passed, decidedBy: d.decidedBy, statistic: d.statistic }).toEqual({
      passed: c.passed,
      decidedBy: c.decidedBy,
      statistic: c.statistic,
    });
    expect(d.reason).toBe(d.checks!.find((k) => k.name === d.decidedBy)!.detail);
    if (c.reason) expect(d.reason).toBe(c.reason);
  });

  it('says which rule decided with what numbers, in one searchable line', () => {
    const pass = gateVerdict(fixture.defaults, { improvement: 0.2, improvementCiLow: 0.0412 });
    expect(gateSummary(pass)).toBe('ciLower +0.0412 vs 0: promote');
    const hacked = gateVerdict(
      { ...fixture.defaults, rule: 'mean' },
      { improvement: 0.001, improvementCiLow: -0.02, rewardHacking: { flagged: true, reason: 'reward up' } },
    );
    expect(gateSummary(hacked)).toBe('mean +0.0010 vs 0: refused (rewardHacking)');
    const md = gateMarkdown(hacked, {
      ...{ improvement: 0.001, improvementCiLow: -0.02, improvementCiHigh: 0.03 },
      rewardHacking: { flagged: true, reason: 'reward up' },
      reward: { change: 0.4 },
    });
    expect(md).toContain('Decided by **rewardHacking**');
    expect(md).toContain('training reward +0.4000 · **⚠ reward hacking**');
  });
});

const base = {
  apiVersion: 'tao/v1',
  name: 'g',
  baseModel: 'tiny://g',
  prompts: { uri: 'file:///p.jsonl' },
  generation: {},
  scoring: { scorers: [{ name: 'style', type: 'regex', params: { pattern: 'a' } }] },
  training: {},
  artifacts: { uri: 'file:a' },
};
const independent = RunSpecSchema.parse({
  ...base,
  evaluation: {
    heldOutFraction: 0.25,
    benchmarkUri: 'file:///bench.jsonl',
    scorers: [{ name: 'exact', type: 'exact-match' }],
  },
  gate: { rule: 'mean', minImprovement: 0.02 },
});
const reuse = RunSpecSchema.parse({ ...base, evaluation: { heldOutFraction: 0.25, reuseTrainingScorers: true } });

const asStageSpec = (r: { stage: string; inputs: object; params: object }) => ({
  apiVersion: 'tao/v1',
  kind: 'StageSpec',
  run: { name: 'g', round: 1, workflowId: 'wf', codeVersion: 'v' },
  key: 'k',
  shard: null,
  output: 'file:///o/',
  store: {},
  ...r,
});

describe('prepare and evaluate requests carry the independent evaluation', () => {
  it('prepare gets the benchmark, where references are needed and the gate rule minimum', () => {
    const r = prepareRequest(independent);
    expect(r.inputs.benchmark).toBe('file:///bench.jsonl');
    expect(r.params.references).toEqual({ '*': 'evaluation.scorers.0' });
    expect(r.params.minEvalPrompts).toEqual({ count: 5, field: 'gate.rule' });
    expect(prepareRequest(reuse).params.references).toBeUndefined();
    expect(prepareRequest(reuse).params.minEvalPrompts).toEqual({ count: 10, field: 'gate.rule' });
    expect(StageSpecSchema.safeParse(asStageSpec(r)).success).toBe(true);
  });

  it('evaluate gets its own scorers, the training scorers for the reward, the gate, benchmark and promoted model', () => {
    const inputs = { prompts: 'file:///h', benchmark: 'file:///b', base: 'file:///m/', tuned: 'file:///t/' };
    const r = evaluateRequest(independent, { ...inputs, promoted: 'file:///p/' });
    expect(r.inputs).toEqual({ ...inputs, promoted: 'file:///p/' });
    expect(r.params.evaluation).toEqual({
      reuseTrainingScorers: false,
      scorers: independent.evaluation.scorers,
      tasks: {},
    });
    expect(r.params.scoring).toEqual(independent.scoring);
    expect(r.params.gate).toEqual(independent.gate);
    expect(evaluateRequest(reuse, inputs).params.evaluation).toEqual({ reuseTrainingScorers: true });
    expect(StageSpecSchema.safeParse(asStageSpec(r)).success).toBe(true);
  });

  it('legacy rounds (started before the patch) keep the params they began with, so their memo keys hold', () => {
    const legacy = { legacy: true };
    const p = prepareRequest(independent, legacy);
    expect(Object.keys(p.params).sort()).toEqual(['heldOutFraction', 'onInvalid', 'seed', 'shards']);
    expect(p.inputs.benchmark).toBeUndefined();
    const e = evaluateRequest(
      independent,
      { prompts: 'file:///h', benchmark: 'file:///b', base: 'file:///m/', tuned: 'file:///t/', promoted: 'file:///p/' },
      legacy,
    );
    expect(e.inputs).toEqual({ prompts: 'file:///h', base: 'file:///m/', tuned: 'file:///t/' });
    expect(Object.keys(e.params).sort()).toEqual([
      'bootstrap',
      'maxTokens',
      'samplesPerPrompt',
      'scoring',
      'seed',
      'temperature',
    ]);
  });
});

describe('tao status says which rule decided with what numbers', () => {
  it('prints the gate, the scorers that judged, the training reward beside the metric, drift and tasks', () => {
    const gate = gateVerdict(
      { ...fixture.defaults, rule: 'mean' },
      {
        improvement: 0.004,
        improvementCiLow: -0.03,
        rewardHacking: { flagged: true, reason: 'reward up, quality flat' },
      },
    );
    const s = { mean: 0.5, ciLow: 0.4, ciHigh: 0.6, n: 30 };
    const result = {
      workflowId: 'tao/x/round-1',
      runName: 'x',
      round: 1,
      promoted: false,
      gate,
      tunedModel: 'file:///t/',
      artifacts: { report: 'file:///r.md' },
      registryPointer: null,
      reusedStages: [],
      evaluation: {
        base: s,
        tuned: { ...s, mean: 0.504 },
        improvement: 0.004,
        improvementCiLow: -0.03,
        improvementCiHigh: 0.04,
        scorers: 'evaluation',
        reward: { change: 0.31, ciLow: 0.22, ciHigh: 0.4, n: 30 },
        rewardHacking: { flagged: true, checked: true, reason: 'reward up, quality flat' },
        drift: { lengthChange: -0.42, formatDrift: 0.1 },
        klToBase: 0.0123,
        tasks: { trivia: { change: 0.004, ciLow: -0.03, ciHigh: 0.04, n: 30 } },
      },
    } as unknown as RoundResult;
    const text = summarise(result);
    expect(text).toContain('not promoted (reward hacking: reward up, quality flat)');
    expect(text).toContain('gate            rule mean: +0.004 vs 0 -> refused by rewardHacking');
    expect(text).toContain("judged by       the evaluation's own scorers; 95% CI of the change [-0.030, +0.040]");
    expect(text).toContain('training reward +0.310 [+0.220, +0.400]  REWARD HACKING: reward up, quality flat');
    expect(text).toContain('drift           length -0.420 (relative), format +0.100, KL to base 0.0123');
    expect(text).toContain('task trivia     +0.004 [-0.030, +0.040] n=30');
  });
});
