/**
 * The run-spec checks across fields (common/validate.ts): scorer names, scorer params the Python scorers would
 * refuse (the shared cases also run against the Python scorers), reference scorers only in the evaluation, and
 * the explicit choice of the evaluation's scorers. Each error names its field.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RunSpecSchema } from '../../common/run-spec.js';
import { regexProblem, scorerParamsProblems } from '../../common/scorer-params.js';
import { referenceNeeds, validateRunSpec } from '../../common/validate.js';

const minimal = () => JSON.parse(readFileSync('tests/fixtures/specs/valid/minimal.json', 'utf8'));
const errorsOf = (doc: unknown, legacy = false) => {
  const r = validateRunSpec(doc, { legacy });
  return r.ok ? [] : r.errors;
};
const withScoring = (scoring: object) => ({ ...minimal(), scoring });
const withEvaluation = (evaluation: object) => ({
  ...minimal(),
  evaluation: { heldOutFraction: 0.2, ...evaluation },
});

describe('scorer params: the shared cases (also run against the Python scorers)', () => {
  const { cases } = JSON.parse(readFileSync('tests/fixtures/scorer-params/cases.json', 'utf8')) as {
    cases: { type: string; params: Record<string, unknown>; expect: string[] }[];
  };
  it.each(cases.map((c) => [c.type, JSON.stringify(c.params), c] as const))('%s %s', (_t, _p, c) => {
    const keys = new Set(scorerParamsProblems(c.type, c.params).map((p) => p.split(':')[0]!.split('.')[0]));
    expect([...keys].sort()).toEqual([...new Set(c.expect)].sort());
  });
});

describe('the bad scorer params the issue lists are refused with the field named', () => {
  it('duplicate scorer names', () => {
    const errors = errorsOf(
      withScoring({
        scorers: [
          { name: 'a', type: 'regex', params: { pattern: 'x' } },
          { name: 'a', type: 'length', params: { max: 3 } },
        ],
      }),
    );
    expect(errors).toEqual(["scoring.scorers.1.name: duplicate scorer name 'a' (also scoring.scorers.0)"]);
  });

  it('a task naming an unknown scorer', () => {
    const errors = errorsOf(
      withScoring({ scorers: [{ name: 'a', type: 'regex', params: { pattern: 'x' } }], tasks: { qa: ['a', 'b'] } }),
    );
    expect(errors).toEqual(["scoring.tasks.qa.1: unknown scorer name 'b' (known: a)"]);
  });

  it('an invalid regex, an unknown vote extractor and a length with min > max', () => {
    const errors = errorsOf(
      withScoring({
        scorers: [
          { name: 'r', type: 'regex', params: { pattern: '(unclosed' } },
          { name: 'v', type: 'vote', params: { extract: 'first-word' } },
          { name: 'l', type: 'length', params: { min: 9, max: 3 } },
        ],
      }),
    );
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/^scoring\.scorers\.0\.params\.pattern: not a valid regular expression/);
    expect(errors[1]).toBe(
      "scoring.scorers.1.params.extract: must be one of 'last-number', 'boxed', 'regex', got 'first-word'",
    );
    expect(errors[2]).toBe('scoring.scorers.2.params.min: must be <= max (9 > 3)');
  });

  it("the reserved name 'combined'", () => {
    const errors = errorsOf(withScoring({ scorers: [{ name: 'combined', type: 'regex', params: { pattern: 'x' } }] }));
    expect(errors).toEqual(["scoring.scorers.0.name: 'combined' is reserved for the weighted combination"]);
  });

  it('the same checks apply to the evaluation scorers', () => {
    const errors = errorsOf(
      withEvaluation({
        scorers: [
          { name: 'e', type: 'exact-match', params: { extract: 'regex' } },
          { name: 'e', type: 'numeric-match', params: { tolerance: -1 } },
        ],
        tasks: { qa: ['nope'] },
      }),
    );
    expect(errors).toEqual([
      'evaluation.scorers.0.params.pattern: required, a non-empty regular expression',
      "evaluation.scorers.1.name: duplicate scorer name 'e' (also evaluation.scorers.0)",
      'evaluation.scorers.1.params.tolerance: must be a number >= 0, got -1',
      "evaluation.tasks.qa.0: unknown scorer name 'nope' (known: e)",
    ]);
  });
});

describe('evaluation independent of the training reward', () => {
  it('reference scorers are refused in training scoring', () => {
    for (const [type, params] of [
      ['exact-match', {}],
      ['python', { module: 'm:f', reference: true }],
    ] as const) {
      const errors = errorsOf(withScoring({ scorers: [{ name: 'x', type, params }] }));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/^scoring\.scorers\.0\.type: '.*compares answers with references/);
    }
  });

  it('the evaluation scorers are an explicit choice: own scorers or reuseTrainingScorers: true', () => {
    const none = { ...minimal(), evaluation: { heldOutFraction: 0.2 } };
    expect(errorsOf(none)).toEqual([expect.stringMatching(/^evaluation\.scorers: set the evaluation's own scorers/)]);
    expect(errorsOf(withEvaluation({ reuseTrainingScorers: false }))).toEqual([
      'evaluation.scorers: required when evaluation.reuseTrainingScorers is false',
    ]);
    const both = withEvaluation({ reuseTrainingScorers: true, scorers: [{ name: 'e', type: 'exact-match' }] });
    expect(errorsOf(both)).toEqual([
      'evaluation.reuseTrainingScorers: the evaluation has its own scorers; remove this or evaluation.scorers',
    ]);
    expect(errorsOf(withEvaluation({ tasks: { qa: ['e'] }, reuseTrainingScorers: true }))).toEqual([
      'evaluation.tasks: per-task scorer lists need evaluation.scorers',
    ]);
    expect(errorsOf(withEvaluation({ scorers: [{ name: 'e', type: 'exact-match' }] }))).toEqual([]);
  });

  it('rounds started before the choice existed still validate in legacy mode (replay)', () => {
    const old = { ...minimal(), evaluation: { heldOutFraction: 0.2 } };
    expect(errorsOf(old, true)).toEqual([]);
  });

  it('tells prepare which evaluation prompts need references, by task', () => {
    const spec = RunSpecSchema.parse(
      withEvaluation({
        scorers: [
          { name: 'style', type: 'regex', params: { pattern: 'x' } },
          { name: 'exact', type: 'exact-match' },
          { name: 'py', type: 'python', params: { module: 'm:f', reference: true } },
        ],
        tasks: { chat: ['style'], qa: ['style', 'py'] },
      }),
    );
    expect(referenceNeeds(spec)).toEqual({ '*': 'evaluation.scorers.1', chat: null, qa: 'evaluation.scorers.2' });
    const reuse = RunSpecSchema.parse(minimal());
    expect(referenceNeeds(reuse)).toEqual({});
  });
});

describe('Python regex syntax judged in JavaScript', () => {
  it.each([
    ['(?P<year>\\d{4})-(?P=year)', '', null],
    ['(?i)yes\\Z', '', null],
    ['\\Aa+', 'm', null],
    ['(?>atomic)', '', null], // not judged: JavaScript has no atomic groups
    ['a++', '', null], // possessive: not judged
    ['(a', '', 'Unterminated group'],
    ['[z-a]', '', 'Range out of order in character class'],
  ])('%s (flags %s)', (pattern, flags, problem) => {
    const why = regexProblem(pattern, flags);
    if (problem === null) expect(why).toBeNull();
    else expect(why).toContain(problem);
  });
});
