/**
 * taoRound on the real Temporal dev server with the real local executor, store and registry; the stage
 * jobs are the scripted stand-ins (fast, controllable failures). The real ML jobs run in round-e2e.test.ts.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundProgress, RoundResult } from '../../common/types.js';
import { progressQuery } from '../../workflows/messages.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

describe('taoRound workflow', () => {
  it('runs every stage once, fans out over shards, promotes, and reuses everything on a rerun', async () => {
    const s = scripted();
    s.setScript({ train: { steps: 5, sleep: 2 } });
    const root = fileRoot('wf');
    const queue = uniqueQueue('wf');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const id = `tao/wf/${queue}`;
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: id,
        args: [roundSpec(root)],
      });
      // progress is queryable while it runs
      let seen: RoundProgress | undefined;
      while (!seen || seen.stage !== 'train') {
        seen = await handle.query(progressQuery);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(seen.stages.generate).toMatchObject({ status: 'done', done: 2, total: 2, jobs: 2 });
      expect(seen.percent).toBeGreaterThan(50);
      const result = (await handle.result()) as RoundResult;
      expect(result).toMatchObject({ runName: 'wf', round: 1, promoted: true, reusedStages: [] });
      expect(result.artifacts.generations).toHaveLength(2);
      expect(result.evaluation.improvement).toBeCloseTo(0.25);
      expect(result.stages.score).toMatchObject({ done: 2, total: 2, status: 'done' });
      const pointer = JSON.parse(fs.readFileSync(new URL(result.registryPointer!), 'utf8'));
      expect(pointer).toMatchObject({ runName: 'wf', round: 1, modelUri: result.tunedModel, workflowId: id });
      expect(fs.existsSync(new URL(`${root}/runs/wf/round-1/result.json`))).toBe(true);
      const launched = s.launches().map((l) => l.stage);
      expect(launched.sort()).toEqual([
        'dataset',
        'evaluate',
        'generate',
        'generate',
        'prepare',
        'score',
        'score',
        'train',
      ]);

      // the same spec again: a new run of the same id, every stage reused from its manifest, no job launched
      const again = await client.workflow.execute(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `${id}-again`,
        args: [roundSpec(root)],
      });
      expect((again as RoundResult).reusedStages).toHaveLength(8);
      expect(s.launches()).toHaveLength(8);
    });
    await close();
  });

  it('rejects an invalid spec before any work, listing every problem with its path', async () => {
    const s = scripted();
    const queue = uniqueQueue('invalid');
    const { client, close } = await testClient();
    const bad = { ...roundSpec(fileRoot('invalid')), name: 'Not Valid', generation: { samplesPerPrompt: 0 } };
    await withWorker(queue, s.deps, async () => {
      const err = await client.workflow
        .execute(ROUND_WORKFLOW, { taskQueue: queue, workflowId: `tao/invalid/${queue}`, args: [bad] })
        .catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('InvalidRunSpec');
      expect(cause.nonRetryable).toBe(true);
      expect(cause.message).toMatch(/name: /);
      expect(cause.message).toMatch(/generation\.samplesPerPrompt: /);
    });
    expect(s.launches()).toHaveLength(0);
    await close();
  });

  it('a failed gate completes the round without promoting and leaves the previous model promoted', async () => {
    const s = scripted();
    const root = fileRoot('gate');
    const queue = uniqueQueue('gate');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const first = (await client.workflow.execute(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/gate/${queue}-1`,
        args: [roundSpec(root, { name: 'gate' })],
      })) as RoundResult;
      expect(first.promoted).toBe(true);
      s.setScript({ evaluate: { improvement: -0.1 } });
      const second = (await client.workflow.execute(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/gate/${queue}-2`,
        args: [roundSpec(root, { name: 'gate', round: 2, training: { maxSteps: 3 } })],
      })) as RoundResult;
      expect(second.promoted).toBe(false);
      expect(second.gate.reason).toContain('not more than');
      const pointer = JSON.parse(fs.readFileSync(new URL(first.registryPointer!), 'utf8'));
      expect(pointer).toMatchObject({ round: 1, modelUri: first.tunedModel });
    });
    await close();
  });

  it('with waitOnFailure off, a non-retryable stage failure fails the round with the job reason; finished stages are kept', async () => {
    const s = scripted();
    s.setScript({ dataset: { exit: 65, reason: 'scores.jsonl line 3: not JSON' } });
    const root = fileRoot('fail');
    const queue = uniqueQueue('fail');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const err = await client.workflow
        .execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/fail/${queue}`,
          args: [roundSpec(root, { operator: { waitOnFailure: false } })],
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = (err as WorkflowFailedError).cause?.cause as ApplicationFailure;
      expect(failure.type).toBe('ArtifactMissing');
      expect(failure.message).toContain('scores.jsonl line 3: not JSON');
      // exactly one attempt: non-retryable
      expect(s.launches().filter((l) => l.stage === 'dataset')).toHaveLength(1);
      // the fix: the next run re-runs only the failed stage onwards
      s.setScript({});
      const fixed = (await client.workflow.execute(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/fail/${queue}-rerun`,
        args: [roundSpec(root)],
      })) as RoundResult;
      expect(fixed.reusedStages.sort()).toEqual(['generate[0]', 'generate[1]', 'prepare', 'score[0]', 'score[1]']);
      expect(s.launches().filter((l) => l.stage === 'generate')).toHaveLength(2);
    });
    await close();
  });
});
