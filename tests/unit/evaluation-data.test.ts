/**
 * `tao validate`'s evaluation-data checks (scripts/cli/evaluation-data.ts): the bad inputs the issue lists are
 * refused with the field named, and the held-out split it computes is the prepare stage's own (checked by
 * running prepare's split in Python on the same file).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { RunSpecSchema, type RunSpecInput } from '../../common/run-spec.js';
import { checkEvaluationData } from '../../scripts/cli/evaluation-data.js';
import { fileRoot } from '../helpers/env.js';

const root = fileRoot('evaldata');
const dir = fileURLToPath(root);
const write = (name: string, rows: unknown[]) => {
  fs.writeFileSync(path.join(dir, name), rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n'));
  return `${root}/${name}`;
};
const rows = (n: number, reference = true, start = 0) =>
  Array.from({ length: n }, (_, i) => ({
    id: `p${i + start}`,
    prompt: `question ${i + start}?`,
    ...(reference ? { reference: String(i) } : {}),
  }));
const spec = (evaluation: object, over: Partial<RunSpecInput> = {}) =>
  RunSpecSchema.parse({
    apiVersion: 'tao/v1',
    name: 'd',
    baseModel: 'tiny://d',
    prompts: { uri: write('prompts.jsonl', rows(60)) },
    generation: {},
    scoring: { scorers: [{ name: 's', type: 'regex', params: { pattern: 'a' } }] },
    training: {},
    artifacts: { uri: root },
    evaluation: { heldOutFraction: 0.25, scorers: [{ name: 'exact', type: 'exact-match' }], ...evaluation },
    ...over,
  });

describe('tao validate checks the evaluation data it can read', () => {
  it('passes a spec whose evaluation data fits', () => {
    expect(checkEvaluationData(spec({}))).toEqual({ problems: [], notes: [] });
  });

  it('the held-out split is the prepare stage’s: too few prompts for the rule names gate.rule', () => {
    const uri = write('few.jsonl', rows(16));
    const python = inject('python');
    const held = execFileSync(
      python,
      [
        '-c',
        'import sys; from tao_jobs.prompts import read_prompts; from tao_jobs.store import Store; ' +
          'from tao_jobs.stages.prepare import dedupe, split_fraction; ' +
          'p = dedupe(read_prompts(Store(), sys.argv[1]).prompts)[0]; print(len(split_fraction(p, 0.25, 3)[1]))',
        uri,
      ],
      { env: { ...process.env, PYTHONPATH: path.resolve('jobs/src') }, encoding: 'utf8' },
    ).trim();
    const r = checkEvaluationData(spec({ seed: 3 }, { prompts: { uri, onInvalid: 'fail' } }));
    expect(Number(held)).toBeLessThan(10);
    expect(r.problems).toEqual([
      `gate.rule: 'ciLower' needs at least 10 evaluation prompts, the evaluation set has ${held} (${held} held out + ` +
        '0 benchmark): add prompts, raise evaluation.heldOutFraction, add a benchmark, or choose a rule that needs fewer',
    ]);
  });

  it('a reference scorer with no references in the evaluation data names the scorer', () => {
    const r = checkEvaluationData(
      spec({}, { prompts: { uri: write('noref.jsonl', rows(60, false)), onInvalid: 'fail' } }),
    );
    expect(r.problems[0]).toMatch(/^evaluation\.scorers\.0: a reference scorer, but none of the \d+ evaluation prompt/);
  });

  it('a benchmark file without references', () => {
    const r = checkEvaluationData(spec({ benchmarkUri: write('bench.jsonl', rows(3, false, 100)) }));
    expect(r.problems).toContain(
      `evaluation.benchmarkUri: ${root}/bench.jsonl has no references: a benchmark is scored against the gold answers its rows carry in 'reference'`,
    );
  });

  it('malformed references with file and line, under onInvalid', () => {
    const bad = [...rows(59), { id: 'x', prompt: 'q?', reference: '' }];
    const uri = write('bad.jsonl', bad);
    expect(checkEvaluationData(spec({}, { prompts: { uri, onInvalid: 'fail' } })).problems).toEqual([
      `${uri}:60: reference: must be a non-empty string, a finite number or a list of them, got string`,
    ]);
    expect(checkEvaluationData(spec({}, { prompts: { uri, onInvalid: 'skip' } })).problems).toEqual([]);
  });

  it('leaves s3:// data to the prepare stage, saying so', () => {
    const r = checkEvaluationData(spec({}, { prompts: { uri: 's3://bucket/p.jsonl', onInvalid: 'fail' } }));
    expect(r).toEqual({
      problems: [],
      notes: ['s3://bucket/p.jsonl: not read here (the prepare stage checks it before any other job runs)'],
    });
  });
});
