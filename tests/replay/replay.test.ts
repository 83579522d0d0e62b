/**
 * Determinism (docs/design.md#rule-12): recorded histories of past rounds replay against the current workflow
 * code. A change that would break running workflows fails here; version it with patched() instead.
 * Histories are recorded by scripts/record-histories.ts.
 */
import { Worker } from '@temporalio/worker';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../helpers/temporal.js';

const dir = path.resolve('tests/replay/histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
  });

  for (const file of files) {
    it(`replays ${file}`, async () => {
      const history = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
      await expect(
        Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file.replace('.json', '')),
      ).resolves.toBeUndefined();
    });
  }
});
