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
    expect(r.spec.gate).toEqual({ minImprovement: 0, promote: true });
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
