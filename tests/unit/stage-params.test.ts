/**
 * The stage requests the workflow builds (workflows/stage-params.ts), checked against the stage-spec schema the
 * Python jobs validate with: every valid run-spec fixture must produce stage specs the jobs accept, so a param
 * mistake fails here instead of as exit 64 at run time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { resolveUri } from '../../activities/artifacts/store.js';
import type { RunSpec } from '../../common/run-spec.js';
import { StageSpecSchema } from '../../common/stage-spec.js';
import { validateRunSpec } from '../../common/validate.js';
import {
  datasetRequest,
  evaluateRequest,
  generateRequest,
  prepareRequest,
  scoreRequest,
  trainRequest,
  type AnyStageRequest,
} from '../../workflows/stage-params.js';

const dir = path.resolve('tests/fixtures/specs/valid');
const fixtures = fs.readdirSync(dir).filter((f) => /\.(json|ya?ml)$/.test(f));

function load(file: string): RunSpec {
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  const checked = validateRunSpec(file.endsWith('.json') ? JSON.parse(text) : parseYaml(text));
  if (!checked.ok) throw new Error(`${file}: ${checked.errors.join('; ')}`);
  return checked.spec;
}

/** Wraps a request in the fields the stage activity adds, as it writes stage-spec.json. */
function stageSpec(spec: RunSpec, r: AnyStageRequest, shard: { index: number; count: number } | null = null) {
  return {
    apiVersion: 'tao/v1',
    kind: 'StageSpec',
    run: { name: spec.name, round: spec.round, workflowId: 'wf', codeVersion: 'v' },
    key: 'k',
    shard,
    output: `file:///artifacts/stages/${r.stage}/k/`,
    store: {},
    stage: r.stage,
    // the stage activity resolves `file:relative` URIs against the worker's directory before writing the spec
    inputs: Object.fromEntries(
      Object.entries(r.inputs).map(([k, v]) => [k, Array.isArray(v) ? v.map(resolve) : resolve(v as string)]),
    ),
    params: r.params,
  };
}

const resolve = (u: string) => resolveUri(u, '/work');
const uri = (name: string) => `file:///artifacts/stages/x/${name}`;

/** Every stage of a round built from one spec, with made-up upstream URIs. */
function requests(spec: RunSpec): [AnyStageRequest, { index: number; count: number } | null][] {
  const shard = { index: 0, count: spec.generation.shards };
  return [
    [prepareRequest(spec), null],
    [generateRequest(spec, uri('p0.jsonl'), uri('model/')), shard],
    [scoreRequest(spec, uri('p0.jsonl'), uri('g.jsonl')), shard],
    [
      datasetRequest(spec, { prompts: [uri('p0.jsonl')], generations: [uri('g.jsonl')], scores: [uri('s.jsonl')] }),
      null,
    ],
    [trainRequest(spec, uri('dpo.jsonl'), uri('model/')), null],
    [evaluateRequest(spec, { prompts: uri('heldout.jsonl'), base: uri('model/'), tuned: uri('merged/') }), null],
  ];
}

describe('stage requests built from every valid run-spec fixture satisfy the stage-spec schema', () => {
  it.each(fixtures)('%s', (file) => {
    const spec = load(file);
    const built = requests(spec);
    expect(built.map(([r]) => r.stage)).toEqual(['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate']);
    for (const [r, shard] of built) {
      const parsed = StageSpecSchema.safeParse(stageSpec(spec, r, shard));
      expect(
        parsed.success ? [] : parsed.error.issues.map((i) => `${r.stage}: ${i.path.join('.')}: ${i.message}`),
      ).toEqual([]);
    }
  });
});

describe('stage requests carry the run spec through', () => {
  const spec = load(fixtures[0]!);
  it.each([
    ['prepare shards = generation.shards', () => prepareRequest(spec).params.shards, spec.generation.shards],
    ['prepare seed = evaluation.seed', () => prepareRequest(spec).params.seed, spec.evaluation.seed],
    ['generate drops shards', () => 'shards' in generateRequest(spec, 'a', 'b').params, false],
    ['score params = scoring', () => scoreRequest(spec, 'a', 'b').params, spec.scoring],
    [
      'dataset algorithm',
      () => datasetRequest(spec, { prompts: [], generations: [], scores: [] }).params.algorithm,
      spec.training.algorithm,
    ],
    ['train params = training', () => trainRequest(spec, 'a', 'b').params, spec.training],
    [
      'evaluate maxTokens = generation.maxTokens',
      () => evaluateRequest(spec, { prompts: 'a', base: 'b', tuned: 'c' }).params.maxTokens,
      spec.generation.maxTokens,
    ],
  ])('%s', (_name, get, want) => {
    expect(get()).toEqual(want);
  });

  it('a held-out file is an input of prepare only when the spec names one', () => {
    expect('heldOut' in prepareRequest(spec).inputs).toBe(!!spec.evaluation.heldOutUri);
    const withFile = { ...spec, evaluation: { ...spec.evaluation, heldOutUri: 'file:///h.jsonl' } };
    expect(prepareRequest(withFile).inputs.heldOut).toBe('file:///h.jsonl');
  });

  it('a stage-spec mistake is caught: a param the jobs refuse fails the schema', () => {
    const bad = { ...prepareRequest(spec), params: { ...prepareRequest(spec).params, shards: 0 } };
    expect(StageSpecSchema.safeParse(stageSpec(spec, bad)).success).toBe(false);
  });
});
