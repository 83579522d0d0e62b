/**
 * End to end with everything real: Temporal dev server, worker, local executor, the real Python stage jobs
 * (tiny model built on the spot, transformers sampling, rule scorers, TRL DPO + LoRA, evaluation), the
 * file store and the registry. The demo spec, with its artifacts under test-output/.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RunSpecInput } from '../../common/run-spec.js';
import type { RoundResult } from '../../common/types.js';
import { defaultDeps } from '../../workers/create-worker.js';
import { fileRoot } from '../helpers/env.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

describe('a whole TAO round with the real stage jobs', () => {
  it('generates, scores, trains, evaluates, promotes a better model, and reuses every stage on a rerun', async () => {
    const demo = JSON.parse(fs.readFileSync('examples/demo/round.json', 'utf8')) as RunSpecInput;
    const root = fileRoot('e2e');
    const spec: RunSpecInput = { ...demo, name: 'e2e', artifacts: { uri: root } };
    const queue = uniqueQueue('e2e');
    const deps = defaultDeps();
    const { client, close } = await testClient();
    await withWorker(queue, deps, async () => {
      const result = (await client.workflow.execute(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/e2e/${queue}`,
        args: [spec],
      })) as RoundResult;

      expect(result.promoted).toBe(true);
      expect(result.evaluation.tuned.mean).toBeGreaterThan(result.evaluation.base.mean);
      expect(result.evaluation.improvement).toBeGreaterThan(0);
      expect(result.stages.generate).toMatchObject({ done: 2, total: 2, jobs: 2 });
      // records flow through: every prompt of a shard got samplesPerPrompt generations
      const gen = result.stages.generate!;
      expect(gen.recordsOut).toBe(gen.recordsIn! * demo.generation.samplesPerPrompt!);
      // outputs are real files: a merged model in safetensors, an adapter, a report
      const merged = new URL(result.tunedModel);
      expect(fs.readdirSync(merged).some((f) => f.endsWith('.safetensors'))).toBe(true);
      expect(fs.readdirSync(new URL(result.artifacts.adapter)).some((f) => f.endsWith('.safetensors'))).toBe(true);
      expect(fs.readFileSync(new URL(result.artifacts.report), 'utf8')).toMatch(/base/i);
      const pointer = JSON.parse(fs.readFileSync(new URL(result.registryPointer!), 'utf8'));
      expect(pointer.modelUri).toBe(result.tunedModel);
      const jobsRun = deps.local.timeline.length;
      expect(jobsRun).toBe(8);

      const again = (await client.workflow.execute(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/e2e/${queue}`,
        args: [spec],
      })) as RoundResult;
      expect(again.reusedStages).toHaveLength(8);
      expect(again.tunedModel).toBe(result.tunedModel);
      expect(deps.local.timeline.length).toBe(jobsRun);
    });
    await close();
  });
});
