/**
 * Fault: the artifact store's disk fills up during a stage. The store is a file:// root on a 4 MiB tmpfs of
 * the test's own (mount needs root, as in CI); while the train job runs the test fills the filesystem to the
 * last block. The stage must fail clearly, naming the store and the cause; the round waits at the operator
 * desk, which offers retry; after the space is freed, a retry completes the round.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundProgress, RoundResult } from '../../common/types.js';
import { progressQuery, retryStageUpdate } from '../../workflows/messages.js';
import { launchesPerStage, readLaunches, until } from '../helpers/faults.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

/** Writes until the filesystem refuses (ENOSPC); returns the filler file. */
function fillUp(dir: string): string {
  const filler = path.join(dir, 'filler.bin');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
      for (;;) {
        try {
          fs.writeSync(fd, chunk, 0, size);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return filler;
}

describe('fault: the artifact store disk is full', () => {
  const mount = path.resolve('test-output', `fault-disk-full-${process.pid}`);

  beforeAll(() => {
    fs.mkdirSync(mount, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', mount]);
  });
  afterAll(() => {
    try {
      execFileSync('umount', [mount]);
    } catch {
      /* not mounted */
    }
  });

  it('fails naming the store, waits for the operator, and a retry after space is freed completes', async () => {
    const root = pathToFileURL(path.join(mount, 'artifacts')).href;
    fs.mkdirSync(new URL(root), { recursive: true });
    const s = scripted();
    s.setScript({ train: { steps: 4, sleep: 4 } });
    const queue = uniqueQueue('disk-full');
    const spec = roundSpec(root, { name: 'diskfull' });
    const { client, close } = await testClient();
    try {
      await withWorker(queue, s.deps, async () => {
        const handle = await client.workflow.start(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/disk-full/${queue}`,
          args: [spec],
        });
        await until('the train job to start', () => s.launches().some((l) => l.stage === 'train'), 120_000);
        const filler = fillUp(mount);

        let progress: RoundProgress | undefined;
        await until(
          'the train stage to wait for an operator',
          async () => {
            progress = await handle.query(progressQuery);
            return progress.waiting.some((f) => f.stage === 'train');
          },
          120_000,
        );
        const failure = progress!.waiting.find((f) => f.stage === 'train')!;
        // clear: which store, and that it is full (soft: the desk and the retry are checked either way)
        expect.soft(failure.message).toContain(root);
        expect.soft(failure.message).toMatch(/no space left|full/i);

        fs.rmSync(filler);
        expect(await handle.executeUpdate(retryStageUpdate, { args: [{ stage: 'train' }] })).toEqual({
          applied: ['train'],
        });
        const result = (await handle.result()) as RoundResult;
        expect(result.promoted).toBe(true);
      });
    } finally {
      await close();
    }
    const perStage = launchesPerStage(readLaunches(s.launchLog));
    expect(perStage.train).toBeGreaterThanOrEqual(2);
    expect({ ...perStage, train: 1 }).toEqual({ prepare: 1, generate: 2, score: 2, dataset: 1, train: 1, evaluate: 1 });
  });
});
