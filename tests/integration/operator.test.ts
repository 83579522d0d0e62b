/**
 * Failed stages wait for the operator (retryStage / skipStage / abort) instead of failing the round;
 * actions that do not apply are rejected with a reason and change nothing; search attributes and current
 * details show the failure. Real dev server, real local executor, scripted stand-in jobs.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundProgress, RoundResult } from '../../common/types.js';
import { abortUpdate, progressQuery, retryStageUpdate, skipStageUpdate } from '../../workflows/messages.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

async function waitingOn(handle: WorkflowHandle, label: string): Promise<RoundProgress> {
  for (let i = 0; i < 300; i++) {
    const p = await handle.query(progressQuery);
    if (p.waiting.some((w) => `${w.stage}${w.shard === null ? '' : `[${w.shard}]`}` === label)) return p;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${label} never waited for the operator`);
}

const count = (s: ReturnType<typeof scripted>, stage: string) => s.launches().filter((l) => l.stage === stage).length;

describe('operator decisions on failed stages', () => {
  it('a failed stage waits, is visible with its reason, rejects inapplicable actions, and retryStage completes the round without redoing finished stages', async () => {
    const s = scripted();
    s.setScript({ train: { exit: 65, reason: 'dpo.jsonl line 7: not JSON' } });
    const queue = uniqueQueue('op-retry');
    const id = `tao/op/${queue}`;
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: id,
        args: [roundSpec(fileRoot('op'))],
      });
      const p = await waitingOn(handle, 'train');
      expect(p.waiting[0]).toMatchObject({
        stage: 'train',
        type: 'ArtifactMissing',
        reason: 'dpo.jsonl line 7: not JSON',
      });
      expect(p.waiting[0]!.logTail!.join('\n')).toContain('scripted failure in train');
      expect(p.stages.train?.status).toBe('failed');

      // the Web UI's view: search attributes and current details
      const d = await handle.describe();
      expect(d.searchAttributes).toMatchObject({
        TaoStage: ['train'],
        TaoStageStatus: ['waiting-for-operator'],
        TaoRunName: ['wf'],
      });
      const visible = await client.workflow.list({
        query: `TaoRunName = 'wf' AND TaoStageStatus = 'waiting-for-operator' AND WorkflowId = '${id}'`,
      });
      const found: string[] = [];
      for await (const w of visible) found.push(w.workflowId);
      expect(found).toEqual([id]);
      // current details (Markdown shown on the workflow page), read the way the UI reads them
      const meta = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
      expect(meta.currentDetails).toContain('### ⚠ train failed: ArtifactMissing');
      expect(meta.currentDetails).toContain('dpo.jsonl line 7: not JSON');
      expect(meta.currentDetails).toContain('--name retryStage');

      // inapplicable actions are rejected and change nothing
      await expect(handle.executeUpdate(skipStageUpdate, { args: [{ stage: 'train' }] })).rejects.toThrow(
        WorkflowUpdateFailedError,
      );
      const rejected = await handle
        .executeUpdate(retryStageUpdate, { args: [{ stage: 'evaluate' }] })
        .catch((e: WorkflowUpdateFailedError) => e);
      expect(rejected).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((rejected as WorkflowUpdateFailedError).cause?.message)).toContain(
        'evaluate is not waiting (waiting for a decision: train)',
      );
      expect((await handle.query(progressQuery)).waiting).toHaveLength(1);

      // fix the cause, then retry
      s.setScript({});
      const applied = await handle.executeUpdate(retryStageUpdate, {
        args: [{ stage: 'train', reason: 'fixed the data' }],
      });
      expect(applied).toEqual({ applied: ['train'] });
      const result = (await handle.result()) as RoundResult;
      expect(result.promoted).toBe(true);
      expect({
        prepare: count(s, 'prepare'),
        generate: count(s, 'generate'),
        score: count(s, 'score'),
        dataset: count(s, 'dataset'),
        train: count(s, 'train'),
      }).toEqual({
        prepare: 1,
        generate: 2,
        score: 2,
        dataset: 1,
        train: 2,
      });
      const final = await handle.describe();
      expect(final.searchAttributes).toMatchObject({ TaoStageStatus: ['promoted'], TaoStage: ['done'] });
    });
    await close();
  });

  it('skipStage leaves a failed generate shard out and the round goes on with the other shard', async () => {
    const s = scripted();
    const queue = uniqueQueue('op-skip');
    const { client, close } = await testClient();
    s.setScript({ generate: { exit: 3, reason: 'CUDA error: an illegal memory access' } });
    await withWorker(queue, s.deps, async () => {
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/op/${queue}`,
        args: [roundSpec(fileRoot('skip'))],
      });
      await waitingOn(handle, 'generate[0]');
      await waitingOn(handle, 'generate[1]');
      // retryable failures were retried by Temporal first (3 attempts per shard)
      expect(count(s, 'generate')).toBe(6);
      s.setScript({});
      await handle.executeUpdate(retryStageUpdate, { args: [{ stage: 'generate', shard: 1 }] });
      await handle.executeUpdate(skipStageUpdate, { args: [{ stage: 'generate', shard: 0, reason: 'bad node' }] });
      const result = (await handle.result()) as RoundResult;
      expect(result.skipped).toEqual(['generate[0]']);
      expect(result.artifacts.generations).toHaveLength(1);
      expect(count(s, 'score')).toBe(1);
    });
    await close();
  });

  it('abort ends a waiting round with the operator reason', async () => {
    const s = scripted();
    s.setScript({ dataset: { exit: 64, reason: 'params.minMargin: must be >= 0' } });
    const queue = uniqueQueue('op-abort');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/op/${queue}`,
        args: [roundSpec(fileRoot('abort'))],
      });
      await waitingOn(handle, 'dataset');
      await handle.executeUpdate(abortUpdate, { args: [{ reason: 'wrong prompts file, starting over' }] });
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toMatchObject({
        type: 'RoundAborted',
        message: 'wrong prompts file, starting over',
      });
      expect((await handle.describe()).searchAttributes).toMatchObject({ TaoStageStatus: ['aborted'] });
    });
    await close();
  });

  it('with no decision in time the round fails with the stage failure', async () => {
    const s = scripted();
    s.setScript({ evaluate: { exit: 65, reason: 'heldout.jsonl: missing' } });
    const queue = uniqueQueue('op-timeout');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const err = await client.workflow
        .execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/op/${queue}`,
          args: [roundSpec(fileRoot('timeout'), { operator: { decisionTimeoutSeconds: 2 } })],
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('ArtifactMissing');
      expect(cause.message).toContain('evaluate failed and no operator decision came within 2s');
      expect(cause.message).toContain('heldout.jsonl: missing');
    });
    await close();
  });
});
