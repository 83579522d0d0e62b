/**
 * The baseline arms (run spec `baselines`): bad arm settings are refused by validation with the field named,
 * `tao validate` refuses a labelled arm whose training prompts lack references, and the arms' stage requests
 * fit the stage-spec schema while leaving the TAO arm's requests (and so its stage keys) unchanged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolveUri } from '../../activities/artifacts/store.js';
import { RunSpecSchema, type RunSpec, type RunSpecInput } from '../../common/run-spec.js';
import { StageSpecSchema } from '../../common/stage-spec.js';
import { validateRunSpec } from '../../common/validate.js';
import { checkEvaluationData } from '../../scripts/cli/evaluation-data.js';
import {
  bestOfNGenerateRequest,
  evaluateRequest,
  labelledTrainRequest,
  labelsRequest,
  prepareRequest,
  randomScoreRequest,
  type AnyStageRequest,
} from '../../workflows/stage-params.js';
import { fileRoot } from '../helpers/env.js';

const minimal = (): RunSpecInput => JSON.parse(fs.readFileSync('tests/fixtures/specs/valid/minimal.json', 'utf8'));
const withArms = (baselines: unknown): unknown => ({ ...minimal(), baselines });
const errors = (input: unknown) => {
  const r = validateRunSpec(input);
  return r.ok ? [] : r.errors;
};
const parsed = (input: unknown): RunSpec => {
  const r = validateRunSpec(input);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.spec;
};

describe('validation of the baseline arms names the field', () => {
  it('accepts every arm, and none', () => {
    expect(errors(withArms({ labelledFineTuning: {}, bestOfN: { samplesPerPrompt: 4 }, randomReward: {} }))).toEqual(
      [],
    );
    expect(errors(withArms({}))).toEqual([]);
    expect(parsed(minimal()).baselines).toBeUndefined();
  });

  it('the shipped example with every arm is valid', () => {
    const example = parsed(JSON.parse(fs.readFileSync('examples/demo/round-baselines.json', 'utf8')));
    expect(Object.keys(example.baselines ?? {}).sort()).toEqual(['bestOfN', 'labelledFineTuning', 'randomReward']);
  });

  it.each([
    [
      { labelledFineTuning: { targetTemplate: 'the answer' } },
      /^baselines\.labelledFineTuning\.targetTemplate: must contain "\{reference\}"/,
    ],
    [
      { labelledFineTuning: { targetTemplate: { trivia: '{reference}.', sql: 'SELECT' } } },
      /^baselines\.labelledFineTuning\.targetTemplate\.sql: must contain/,
    ],
    [{ bestOfN: { samplesPerPrompt: 1 } }, /^baselines\.bestOfN\.samplesPerPrompt: /],
    [{ randomReward: { seed: 0.5 } }, /^baselines\.randomReward\.seed: /],
    [{ labelledFineTuning: { missingReferences: 'ignore' } }, /^baselines\.labelledFineTuning\.missingReferences: /],
    [{ bestOfM: {} }, /^baselines: .*bestOfM/],
  ])('%j', (arms, want) => {
    const found = errors(withArms(arms));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(want);
  });
});

describe('tao validate refuses a labelled arm whose training prompts lack references', () => {
  const root = fileRoot('baselines-data');
  const dir = fileURLToPath(root);
  const write = (name: string, refs: (i: number) => boolean) => {
    const rows = Array.from({ length: 80 }, (_, i) => ({
      id: `p${i}`,
      prompt: `question ${i}?`,
      ...(refs(i) ? { reference: String(i) } : {}),
    }));
    fs.writeFileSync(path.join(dir, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return `${root}/${name}`;
  };
  const spec = (uri: string, arm: object) =>
    RunSpecSchema.parse({ ...minimal(), prompts: { uri }, baselines: { labelledFineTuning: arm } });

  it('none of the training prompts has one', () => {
    const r = checkEvaluationData(
      spec(
        write('none.jsonl', () => false),
        {},
      ),
    );
    expect(r.problems).toEqual([
      expect.stringMatching(
        /^baselines\.labelledFineTuning: none of the \d+ training prompt\(s\) carries a 'reference'/,
      ),
    ]);
  });

  it('some lack one: refused under missingReferences "fail" (with the first line), accepted under "skip"', () => {
    const uri = write('some.jsonl', (i) => i % 2 === 0);
    const r = checkEvaluationData(spec(uri, {}));
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(
      /^baselines\.labelledFineTuning: \d+ of \d+ training prompt\(s\) without a 'reference', first at .*some\.jsonl:\d+ /,
    );
    expect(checkEvaluationData(spec(uri, { missingReferences: 'skip' })).problems).toEqual([]);
  });

  it('every training prompt has one', () => {
    expect(
      checkEvaluationData(
        spec(
          write('all.jsonl', () => true),
          {},
        ),
      ).problems,
    ).toEqual([]);
  });
});

describe('the arms’ stage requests', () => {
  const arms = { labelledFineTuning: { targetTemplate: { trivia: 'it is {reference}.' }, epochs: 3 }, bestOfN: {} };
  const spec = parsed(withArms({ ...arms, randomReward: { seed: 7 } }));
  const plain = parsed(minimal());
  const uri = (name: string) => `file:///artifacts/stages/x/${name}`;
  const wrap = (r: AnyStageRequest) => ({
    apiVersion: 'tao/v1',
    kind: 'StageSpec',
    run: { name: spec.name, round: 1, workflowId: 'wf', codeVersion: 'v' },
    key: 'k',
    shard: null,
    output: `file:///artifacts/stages/${r.stage}/k/`,
    store: {},
    stage: r.stage,
    inputs: Object.fromEntries(Object.entries(r.inputs).map(([k, v]) => [k, resolveUri(v as string, '/work')])),
    params: r.params,
  });

  it('fit the stage-spec schema', () => {
    const built: AnyStageRequest[] = [
      labelsRequest(spec)!,
      labelledTrainRequest(spec, uri('labelled.jsonl'), uri('model/')),
      bestOfNGenerateRequest(spec, uri('heldout.jsonl'), uri('model/')),
      randomScoreRequest(spec, uri('p0.jsonl'), uri('g.jsonl')),
      evaluateRequest(spec, {
        prompts: uri('heldout.jsonl'),
        base: uri('model/'),
        tuned: uri('merged/'),
        labelledFineTuning: uri('l/merged/'),
        randomReward: uri('r/merged/'),
        bestOfNGenerations: uri('g.jsonl'),
        bestOfNScores: uri('s.jsonl'),
      }),
    ];
    for (const r of built) {
      const p = StageSpecSchema.safeParse(wrap(r));
      expect(p.success ? [] : p.error.issues.map((i) => `${r.stage}: ${i.path.join('.')}: ${i.message}`)).toEqual([]);
    }
  });

  it('carry the arm settings', () => {
    expect(labelsRequest(spec)!.params.labelled).toEqual({
      targetTemplate: { trivia: 'it is {reference}.' },
      missingReferences: 'fail',
      field: 'baselines.labelledFineTuning',
    });
    expect(labelsRequest(parsed(withArms({ labelledFineTuning: {} })))!.params.labelled!.targetTemplate).toEqual({
      '*': '{reference}',
    });
    const train = labelledTrainRequest(spec, 'a', 'b').params;
    expect([train.algorithm, train.epochs, train.learningRate]).toEqual(['sft', 3, spec.training.learningRate]);
    expect(bestOfNGenerateRequest(spec, 'a', 'b').params.samplesPerPrompt).toBe(spec.generation.samplesPerPrompt);
    const bon = parsed(withArms({ bestOfN: { samplesPerPrompt: 5 } }));
    expect(bestOfNGenerateRequest(bon, 'a', 'b').params.samplesPerPrompt).toBe(5);
    expect(randomScoreRequest(spec, 'a', 'b').params.scorers).toEqual([
      {
        name: 'random',
        type: 'python',
        weight: 1,
        params: { module: 'tao_jobs.baselines:random_reward', args: { seed: 7 } },
      },
    ]);
  });

  it('leave the TAO arm’s requests as they are without arms (so its stages keep their keys)', () => {
    expect(labelsRequest(plain)).toBeUndefined();
    expect(prepareRequest(spec)).toEqual(prepareRequest(plain));
    const inputs = { prompts: 'a', base: 'b', tuned: 'c' };
    expect(evaluateRequest(spec, inputs)).toEqual(evaluateRequest(plain, inputs));
  });
});
