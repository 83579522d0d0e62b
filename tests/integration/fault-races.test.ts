/**
 * Faults: the same round started twice at once, and two workers racing the same stage. In both cases one job
 * runs per stage key. Real dev server, two in-process workers on one task queue sharing the artifact store,
 * the scripted jobs (each launch logged with its stage key).
 */
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import { RunSpecSchema } from '../../common/run-spec.js';
import type { RoundResult } from '../../common/types.js';
import { startRound } from '../../scripts/cli/round.js';
import { fileRoot } from '../helpers/env.js';
import { launchedMoreThan, launchesPerStage, readLaunches } from '../helpers/faults.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const ONCE = { prepare: 1, generate: 2, score: 2, dataset: 1, train: 1, evaluate: 1 };

describe('fault: races', () => {
  it('the same round started twice at once (tao run twice): one execution, one job per stage', async () => {
    const s = scripted();
    s.setScript({ prepare: { steps: 2, sleep: 2 } });
    const queue = uniqueQueue('race-start');
    process.env.TAO_TASK_QUEUE = queue;
    const document = roundSpec(fileRoot('race-start'), { name: `racestart-${queue.slice(-8)}` });
    const spec = RunSpecSchema.parse(document);
    const { client, close } = await testClient();
    try {
      await withWorker(queue, s.deps, async () => {
        const [a, b] = await Promise.all([startRound(client, document, spec), startRound(client, document, spec)]);
        expect(a.workflowId).toBe(b.workflowId);
        expect(a.firstExecutionRunId).toBe(b.firstExecutionRunId);
        const result = (await a.result()) as RoundResult;
        expect(result.promoted).toBe(true);
      });
    } finally {
      delete process.env.TAO_TASK_QUEUE;
      await close();
    }
    const launches = readLaunches(s.launchLog);
    expect(launchesPerStage(launches)).toEqual(ONCE);
    expect(launchedMoreThan(launches, 1)).toEqual({});
  });

  it('two workers racing every stage of one spec (two workflow ids at once): one job per stage key', async () => {
    const s = scripted();
    // long enough that both rounds are inside every stage at the same time
    s.setScript(
      Object.fromEntries(
        ['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate'].map((st) => [st, { steps: 2, sleep: 3 }]),
      ),
    );
    const queue = uniqueQueue('race-workers');
    const spec = roundSpec(fileRoot('race-workers'), { name: 'raceworkers' });
    const { client, close } = await testClient();
    try {
      // two workers on the same queue, one store: each round's activities land on either
      const results = await withWorker(queue, s.deps, () =>
        withWorker(queue, s.deps, () =>
          Promise.all(
            ['a', 'b'].map(
              (x) =>
                client.workflow.execute(ROUND_WORKFLOW, {
                  taskQueue: queue,
                  workflowId: `tao/race/${queue}-${x}`,
                  args: [spec],
                }) as Promise<RoundResult>,
            ),
          ),
        ),
      );
      expect(results.map((r) => r.promoted)).toEqual([true, true]);
      // both rounds end on the same outputs
      expect(results[0]!.tunedModel).toBe(results[1]!.tunedModel);
    } finally {
      await close();
    }
    const launches = readLaunches(s.launchLog);
    expect(launchedMoreThan(launches, 1)).toEqual({});
    expect(launchesPerStage(launches)).toEqual(ONCE);
  });
});
