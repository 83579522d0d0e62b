import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schemaFiles } from '../../scripts/gen-schema.js';

describe('generated JSON Schemas', () => {
  it('are committed and current (run npm run gen:schema after changing common/*-spec.ts)', () => {
    for (const [rel, content] of Object.entries(schemaFiles())) {
      expect(readFileSync(rel, 'utf8'), rel).toBe(content);
    }
  });
});
