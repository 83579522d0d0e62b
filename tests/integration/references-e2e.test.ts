/**
 * References never reach training, proved on a real round: Temporal dev server, worker, local executor and
 * the real Python stage jobs (tiny model, sampling, rule scorers, TRL DPO + LoRA, evaluation with its own
 * reference scorers and a fixed benchmark). Every prompt and benchmark row carries a canary reference; the
 * canary is then searched in every training-side artifact (prompt shards, generations, scores, dataset,
 * the train stage's spec and outputs, every stage's logs) and must be absent, while the evaluation side
 * (held-out file, benchmark) must carry it — so the search itself is shown to work.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RunSpecInput } from '../../common/run-spec.js';
import type { RoundResult } from '../../common/types.js';
import { defaultDeps } from '../../workers/create-worker.js';
import { fileRoot } from '../helpers/env.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const CANARY = 'CANARY-7f3a9c-REF';
const QUESTIONS = ['spider', 'cat', 'bird', 'ant', 'dog', 'snake', 'horse', 'fish'];

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : [p];
  });
}

describe('references stay on the evaluation side of a real round', () => {
  it('no training-side artifact contains a reference; evaluation scores against them and the gate says why', async () => {
    const root = fileRoot('refs');
    const dir = fileURLToPath(root);
    const rows = Array.from({ length: 40 }, (_, i) => ({
      id: `q${i}`,
      prompt: `Question ${i}: how many legs does a ${QUESTIONS[i % QUESTIONS.length]} have?`,
      task: 'trivia',
      reference: `${CANARY}-${i}`,
    }));
    fs.writeFileSync(path.join(dir, 'prompts.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const bench = Array.from({ length: 3 }, (_, i) => ({
      id: `b${i}`,
      prompt: `Benchmark ${i}: how many wheels does a car have?`,
      reference: [`${CANARY}-bench-${i}`, '4'],
    }));
    fs.writeFileSync(path.join(dir, 'bench.jsonl'), bench.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const spec: RunSpecInput = {
      apiVersion: 'tao/v1',
      name: 'refs',
      baseModel: 'tiny://demo',
      prompts: { uri: `${root}/prompts.jsonl` },
      evaluation: {
        heldOutFraction: 0.3,
        benchmarkUri: `${root}/bench.jsonl`,
        scorers: [
          { name: 'exact', type: 'exact-match', params: { extract: 'last-number' } },
          { name: 'mentions', type: 'contains', weight: 0.5 },
        ],
      },
      generation: { samplesPerPrompt: 2, maxTokens: 8, shards: 2 },
      scoring: { scorers: [{ name: 'digits', type: 'regex', params: { pattern: '\\d' } }] },
      training: { maxSteps: 2, batchSize: 2 },
      executor: { type: 'local', heartbeatTimeoutSeconds: 30 },
      artifacts: { uri: root },
    };
    const queue = uniqueQueue('refs');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, defaultDeps(), async () => {
        const workflowId = `tao/refs/${queue}`;
        const result = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId,
          args: [spec],
        })) as RoundResult;

        // Training side: prompt shards, and everything of generate, score, dataset and train (spec, outputs, logs).
        const stages = path.join(dir, 'stages');
        const trainingSide = [
          ...result.artifacts.prompts.map((u) => fileURLToPath(u)),
          ...['generate', 'score', 'dataset', 'train'].flatMap((s) => files(path.join(stages, s))),
        ];
        expect(trainingSide.some((f) => f.endsWith('generations.jsonl'))).toBe(true);
        expect(
          trainingSide.some((f) => f.endsWith('stage-spec.json') && f.includes(`${path.sep}train${path.sep}`)),
        ).toBe(true);
        expect(trainingSide.some((f) => f.endsWith('.safetensors'))).toBe(true);
        const leaking = trainingSide.filter((f) => fs.readFileSync(f).includes(CANARY));
        expect(leaking).toEqual([]);

        // Evaluation side: the search finds the canary where it belongs.
        const evaluationSide = files(path.join(stages, 'evaluate')).concat(fileURLToPath(result.artifacts.heldOut));
        const carrying = evaluationSide.filter((f) => fs.readFileSync(f).includes(CANARY)).map((f) => path.basename(f));
        expect(carrying).toEqual(['heldout.jsonl']); // eval.jsonl holds answers and scores, not references
        const prepareDir = path.dirname(fileURLToPath(result.artifacts.heldOut));
        expect(fs.readFileSync(path.join(prepareDir, 'benchmark.jsonl'), 'utf8')).toContain(`${CANARY}-bench-0`);

        // The round says which scorers judged and which rule decided with what numbers.
        expect(result.evaluation.scorers).toBe('evaluation');
        expect(result.evaluation.reward).toMatchObject({ n: expect.any(Number) });
        expect(result.evaluation.rewardHacking).toMatchObject({ checked: expect.any(Boolean) });
        expect(result.gate).toMatchObject({ rule: 'ciLower', threshold: 0, decidedBy: expect.any(String) });
        expect(result.gate.checks!.map((c) => c.name)).toContain('rule');
        const report = fs.readFileSync(fileURLToPath(result.artifacts.report), 'utf8');
        expect(report).toContain("Judged by the evaluation's own scorers (exact, mentions)");
        expect(report).toContain('## Gate');
        expect(report).toContain('| benchmark | 3 |');
        const description = await client.workflow.getHandle(workflowId).describe();
        expect(String(description.searchAttributes.TaoGate?.[0])).toMatch(/^ciLower [-+]\d\.\d{4} vs 0: /);
      });
    } finally {
      await close();
    }
  });
});
