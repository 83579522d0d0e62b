import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlywheelSpecSchema } from '../../common/flywheel-spec.js';
import { validateRunSpec } from '../../common/validate.js';

const dir = path.resolve('tests/fixtures/specs');
const load = (kind: string, f: string) =>
  JSON.parse(readFileSync(path.join(dir, kind, f), 'utf8')) as Record<string, unknown>;

describe('run spec validation (shared fixtures with the Python jobs)', () => {
  for (const f of readdirSync(path.join(dir, 'valid'))) {
    it(`accepts valid/${f}`, () => {
      const r = validateRunSpec(load('valid', f));
      expect(r.ok ? [] : r.errors).toEqual([]);
    });
  }

  for (const f of readdirSync(path.join(dir, 'invalid'))) {
    it(`rejects invalid/${f} naming every expected field`, () => {
      const { $expectError, ...doc } = load('invalid', f);
      const r = validateRunSpec(doc);
      expect(r.ok).toBe(false);
      if (r.ok) return;
      for (const p of $expectError as string[]) {
        expect(
          r.errors.some((e) => e.startsWith(p)),
          `expected an error at ${p} in:\n${r.errors.join('\n')}`,
        ).toBe(true);
      }
      for (const e of r.errors) expect(e).toMatch(/^[\w.()]+: .+/);
    });
  }

  it('applies defaults so the workflow sees a complete spec', () => {
    const r = validateRunSpec(load('valid', 'minimal.json'));
    if (!r.ok) throw new Error(r.errors.join('\n'));
    expect(r.spec.round).toBe(1);
    expect(r.spec.generation).toMatchObject({ engine: 'transformers', samplesPerPrompt: 8, shards: 1 });
    expect(r.spec.executor).toEqual({ type: 'local', resources: {}, heartbeatTimeoutSeconds: 60 });
    expect(r.spec.gate).toEqual({
      rule: 'ciLower',
      minImprovement: 0,
      maxTaskRegression: 0.05,
      rewardHacking: 'refuse',
      flatTolerance: 0.01,
      promote: true,
    });
  });

  it('requires exactly one held-out source', () => {
    const doc = load('valid', 'minimal.json');
    const both = validateRunSpec({ ...doc, evaluation: { heldOutFraction: 0.2, heldOutUri: 'file:x.jsonl' } });
    const none = validateRunSpec({ ...doc, evaluation: {} });
    for (const r of [both, none]) {
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors.join('\n')).toContain('evaluation: set exactly one of heldOutFraction and heldOutUri');
    }
  });
});

describe('executor.resources.<stage>.nodes', () => {
  const withResources = (resources: Record<string, unknown>, type = 'kubernetes') =>
    validateRunSpec({ ...load('valid', 'minimal.json'), executor: { type, resources } });

  it('train may run on several nodes (Kubernetes); unset means one node', () => {
    const r = withResources({ train: { gpu: 8, nodes: 4 }, generate: { gpu: 1, nodes: 1 } });
    if (!r.ok) throw new Error(r.errors.join('\n'));
    expect(r.spec.executor.resources.train).toEqual({ gpu: 8, nodes: 4 });
    const plain = withResources({ train: { gpu: 8 } });
    if (!plain.ok) throw new Error(plain.errors.join('\n'));
    expect(plain.spec.executor.resources.train).toEqual({ gpu: 8 }); // no default written: nodes ?? 1
  });

  for (const stage of ['prepare', 'generate', 'score', 'dataset', 'evaluate']) {
    it(`${stage} with nodes > 1 is refused, naming the field and the reason`, () => {
      const r = withResources({ [stage]: { nodes: 2 } });
      expect(r.ok ? [] : r.errors).toEqual([
        `executor.resources.${stage}.nodes: only train runs on more than one node (one torchrun gang); ` +
          'generate and score scale out with generation.shards',
      ]);
    });
  }

  it('nodes is a positive integer', () => {
    for (const nodes of [0, -1, 1.5, '2']) {
      const r = withResources({ train: { nodes } });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toMatch(/^executor\.resources\.train\.nodes: /);
    }
  });

  it('the local executor runs one process: several train nodes need Kubernetes', () => {
    const r = withResources({ train: { nodes: 2 } }, 'local');
    expect(r.ok ? [] : r.errors).toEqual([
      'executor.resources.train.nodes: more than one node needs executor.type "kubernetes" (the local executor runs one process)',
    ]);
    expect(withResources({ train: { nodes: 1 } }, 'local').ok).toBe(true);
  });

  it('an unknown stage is refused', () => {
    const r = withResources({ trian: { nodes: 2 } });
    expect(r.ok ? [] : r.errors).toEqual(['executor.resources: Unrecognized key: "trian"']);
  });

  it('the committed JSON Schema says the same (the Python jobs and editors validate with it)', () => {
    const schema = JSON.parse(readFileSync('schemas/run-spec.schema.json', 'utf8'));
    const stages = schema.properties.executor.properties.resources.properties;
    expect(stages.train.properties.nodes).toMatchObject({ type: 'integer', minimum: 1, default: 1 });
    expect(stages.train.properties.nodes.maximum).not.toBe(1);
    for (const s of ['prepare', 'generate', 'score', 'dataset', 'evaluate']) {
      expect(stages[s].properties.nodes).toMatchObject({ type: 'integer', minimum: 1, maximum: 1, default: 1 });
    }
  });
});

describe('shipped examples', () => {
  it('the demo round spec is valid', () => {
    const r = validateRunSpec(JSON.parse(readFileSync('examples/demo/round.json', 'utf8')));
    expect(r.ok ? [] : r.errors).toEqual([]);
  });

  it('the flywheel spec is valid', () => {
    const r = FlywheelSpecSchema.safeParse(JSON.parse(readFileSync('examples/flywheel/flywheel.json', 'utf8')));
    expect(r.success ? [] : r.error.issues).toEqual([]);
  });
});
