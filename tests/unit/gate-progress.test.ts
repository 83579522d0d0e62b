import { describe, expect, it } from 'vitest';
import { RunSpecSchema } from '../../common/run-spec.js';
import type { StageResult } from '../../common/types.js';
import { ProgressTracker } from '../../workflows/progress.js';
import { decideGate } from '../../workflows/gate.js';

const spec = (gate: object) =>
  RunSpecSchema.parse({
    apiVersion: 'tao/v1',
    name: 'g',
    baseModel: 'tiny://g',
    prompts: { uri: 'file:p.jsonl' },
    evaluation: { heldOutFraction: 0.2 },
    generation: {},
    scoring: { scorers: [{ name: 'a', type: 'regex', params: { pattern: 'a' } }] },
    training: {},
    artifacts: { uri: 'file:a' },
    gate,
  });

describe('evaluation gate', () => {
  it.each([
    [{}, 0.1, true],
    [{}, 0, false],
    [{}, -0.2, false],
    [{ minImprovement: 0.05 }, 0.04, false],
    [{ minImprovement: 0.05 }, 0.06, true],
    [{ promote: false }, 0.5, false],
    [{}, NaN, false],
  ])('gate %j with improvement %s passes: %s', (gate, improvement, passed) => {
    const d = decideGate(spec(gate), improvement);
    expect(d.passed).toBe(passed);
    expect(d.reason.length).toBeGreaterThan(10);
  });
});

describe('progress', () => {
  const result = (reused: boolean): StageResult => ({
    stage: 'generate',
    shard: 0,
    key: 'k',
    output: 'file:///o/',
    manifest: 'file:///o/manifest.json',
    outputs: {},
    records: { in: 10, out: 80 },
    metrics: {},
    durationS: 1,
    reused,
    jobName: 'j',
  });

  it('counts shards, records and reuse, and reports percent', () => {
    const p = new ProgressTracker();
    p.begin('prepare');
    p.finished('prepare', { ...result(true), stage: 'prepare' });
    p.begin('generate', 2);
    p.finished('generate', result(false));
    const mid = p.snapshot();
    expect(mid).toMatchObject({ stage: 'generate', shardsDone: 1, shardsTotal: 2 });
    expect(mid.stages.prepare?.status).toBe('reused');
    expect(mid.stages.generate).toMatchObject({ status: 'running', recordsIn: 10, recordsOut: 80, jobs: 1 });
    expect(mid.percent).toBe(Math.round(5 + 35 / 2));
    p.finished('generate', result(true));
    expect(p.snapshot().stages.generate).toMatchObject({ status: 'done', jobs: 1, reused: 1 });
    p.finish();
    expect(p.snapshot().percent).toBe(100);
  });
});
