/**
 * The baseline arms of a real round (run spec `baselines`): Temporal dev server, worker, local executor and the
 * real Python stage jobs on the tiny model, kept as small as a round gets (few prompts, two samples, two training
 * steps). All three arms run as stages of the round and are reported beside TAO with paired statistics (result,
 * report.md, `tao status`, the Web UI's current details); a rerun reuses every stage, the arms' among them; a round without arms reuses every
 * TAO stage but evaluate (the arms never change the TAO arm's keys); references reach exactly one file outside
 * the evaluation side, the labelled arm's `baseline-labelled-sft.jsonl`; bad arm settings and training prompts
 * without references are refused with the field named.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RunSpecInput } from '../../common/run-spec.js';
import type { RoundResult } from '../../common/types.js';
import { summarise } from '../../scripts/cli/round.js';
import { defaultDeps } from '../../workers/create-worker.js';
import { fileRoot } from '../helpers/env.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const CANARY = 'CANARY-3e81b0-BASELINE';
const FACTS: [string, number][] = [
  ['spider', 8],
  ['cat', 4],
  ['bird', 2],
  ['ant', 6],
  ['dog', 4],
];
const ARMS = ['labelledFineTuning', 'bestOfN', 'randomReward'] as const;

function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : [p];
  });
}

function roundSpec(root: string, prompts: string, baselines?: RunSpecInput['baselines']): RunSpecInput {
  return {
    apiVersion: 'tao/v1',
    name: 'baselines',
    baseModel: 'tiny://demo',
    prompts: { uri: prompts },
    evaluation: {
      heldOutFraction: 0.4,
      scorers: [{ name: 'exact', type: 'exact-match', params: { extract: 'last-number' } }],
    },
    generation: { samplesPerPrompt: 2, maxTokens: 10, shards: 1 },
    scoring: {
      scorers: [
        { name: 'digits', type: 'regex', params: { pattern: '\\d' } },
        { name: 'short', type: 'length', weight: 0.5, params: { min: 1, max: 4, unit: 'words' } },
      ],
    },
    training: { maxSteps: 2, batchSize: 2, minMargin: 0.01 },
    gate: { rule: 'mean' },
    executor: { type: 'local', heartbeatTimeoutSeconds: 30 },
    operator: { waitOnFailure: false },
    artifacts: { uri: root },
    ...(baselines ? { baselines } : {}),
  };
}

describe('baseline arms beside TAO in a real round', () => {
  it('all three arms run as reusable stages and are reported with paired statistics; references reach only the labelled arm’s file', async () => {
    const root = fileRoot('baselines');
    const dir = fileURLToPath(root);
    // the canary comes first in each reference list, so it is the labelled arm's SFT target
    const rows = Array.from({ length: 20 }, (_, i) => {
      const [animal, legs] = FACTS[i % FACTS.length]!;
      return {
        id: `q${i}`,
        prompt: `Question ${i}: how many legs does a ${animal} have?`,
        task: 'trivia',
        reference: [`${CANARY}-${i}`, String(legs)],
      };
    });
    fs.writeFileSync(path.join(dir, 'prompts.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const arms = {
      labelledFineTuning: { targetTemplate: 'the answer is {reference}.', maxSteps: 2 },
      bestOfN: { samplesPerPrompt: 2 },
      randomReward: { seed: 1 },
    };
    const spec = roundSpec(root, `${root}/prompts.jsonl`, arms);
    const queue = uniqueQueue('baselines');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, defaultDeps(), async () => {
        const run = (workflowId: string, s: RunSpecInput) =>
          client.workflow.execute(ROUND_WORKFLOW, { taskQueue: queue, workflowId, args: [s] }) as Promise<RoundResult>;
        const result = await run(`tao/baselines/${queue}`, spec);

        // every arm reported beside TAO, on the same prompts, with the same paired statistics
        const b = result.evaluation.baselines!;
        expect(Object.keys(b).sort()).toEqual([...ARMS].sort());
        const n = result.evaluation.base.n;
        expect(n).toBeGreaterThanOrEqual(5);
        for (const arm of ARMS) {
          const a = b[arm]!;
          expect(a.score.mean).toBeGreaterThanOrEqual(0);
          expect(a.score.mean).toBeLessThanOrEqual(1);
          expect([a.score.n, a.vsBase.n, a.taoVsArm.n]).toEqual([n, n, n]);
          expect(a.vsBase.change).toBeCloseTo(a.score.mean - result.evaluation.base.mean, 9);
          expect(a.taoVsArm.change).toBeCloseTo(result.evaluation.tuned.mean - a.score.mean, 9);
          expect(a.vsBase.ciLow).toBeLessThanOrEqual(a.vsBase.ciHigh);
        }
        console.log(
          `[baselines-e2e] n=${n} base ${result.evaluation.base.mean.toFixed(3)} TAO ${result.evaluation.tuned.mean.toFixed(3)} ` +
            ARMS.map((arm) => `${arm} ${b[arm]!.score.mean.toFixed(3)}`).join(' '),
        );
        expect(result.artifacts.baselines).toMatchObject({
          labelledFineTuning: expect.stringContaining('/stages/train/'),
          randomReward: expect.stringContaining('/stages/train/'),
          bestOfNGenerations: expect.stringContaining('/stages/generate/'),
          bestOfNScores: expect.stringContaining('/stages/score/'),
        });
        expect(result.stages.baselines).toMatchObject({ status: 'done', done: 7, total: 7 });
        const report = fs.readFileSync(fileURLToPath(result.artifacts.report), 'utf8');
        expect(report).toContain('## Baselines beside TAO');
        for (const title of ['| labelled fine-tuning', '| best-of-2 at inference', '| random-reward control']) {
          expect(report).toContain(title);
        }
        const meta = (await client.workflow
          .getHandle(`tao/baselines/${queue}`)
          .query('__temporal_workflow_metadata')) as { currentDetails?: string };
        expect(meta.currentDetails).toContain('### Baselines beside TAO (do not gate)');
        for (const arm of ARMS) expect(meta.currentDetails).toMatch(new RegExp(`\\| ${arm} \\| \\d\\.\\d{3} \\| `));
        const status = summarise(result);
        for (const arm of ARMS) expect(status).toMatch(new RegExp(`baseline ${arm} +\\d\\.\\d{3} \\[`));

        // references: besides the evaluation side (held-out file, evaluate stage), only the labelled arm's file
        const stages = path.join(dir, 'stages');
        const searched = [...files(stages)].filter((f) => !f.includes(`${path.sep}evaluate${path.sep}`));
        expect(searched.some((f) => f.endsWith('generations.jsonl'))).toBe(true);
        expect(searched.some((f) => f.endsWith('.safetensors'))).toBe(true);
        const carrying = searched.filter((f) => fs.readFileSync(f).includes(CANARY)).map((f) => path.basename(f));
        expect(carrying.sort()).toEqual(['baseline-labelled-sft.jsonl', 'heldout.jsonl']);
        const labelled = fs
          .readFileSync(
            files(stages).find((f) => f.endsWith('baseline-labelled-sft.jsonl'))!,
            'utf8',
          )
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        expect(labelled.length).toBe(20 - n);
        expect(labelled[0].completion[0].content).toMatch(new RegExp(`^the answer is ${CANARY}-\\d+\\.$`));

        // resume: the same spec again reuses every stage, the arms' too
        const again = await run(`tao/baselines/${queue}-again`, spec);
        expect(again.evaluation.baselines).toEqual(result.evaluation.baselines);
        expect(again.reusedStages).toEqual(
          expect.arrayContaining([
            'labelledFineTuning:prepare',
            'labelledFineTuning:train',
            'bestOfN:generate',
            'bestOfN:score',
            'randomReward:score[0]',
            'randomReward:dataset',
            'randomReward:train',
            'train',
            'evaluate',
          ]),
        );
        // without arms: every TAO stage but evaluate (whose inputs named the arms) is reused
        const plain = await run(`tao/baselines/${queue}-plain`, roundSpec(root, `${root}/prompts.jsonl`));
        expect(plain.evaluation.baselines).toBeUndefined();
        expect(plain.reusedStages.sort()).toEqual(['dataset', 'generate[0]', 'prepare', 'score[0]', 'train']);
        expect(plain.evaluation.tuned.mean).toBeCloseTo(result.evaluation.tuned.mean, 9);
      });
    } finally {
      await close();
    }
  });

  it('refuses bad arm settings and a labelled arm without references, naming the field, before other jobs', async () => {
    const root = fileRoot('baselines-bad');
    const dir = fileURLToPath(root);
    const rows = Array.from({ length: 20 }, (_, i) => ({ id: `q${i}`, prompt: `Question ${i}?`, reference: '1' }));
    // references on the held-out side only would not do: here no training prompt has one
    const noRefs = rows.map(({ reference: _r, ...r }) => r);
    fs.writeFileSync(path.join(dir, 'norefs.jsonl'), noRefs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const queue = uniqueQueue('baselines-bad');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, defaultDeps(), async () => {
        const fail = async (workflowId: string, s: RunSpecInput) => {
          const err = await client.workflow
            .execute(ROUND_WORKFLOW, { taskQueue: queue, workflowId, args: [s] })
            .catch((e) => e);
          expect(err).toBeInstanceOf(WorkflowFailedError);
          return (err as WorkflowFailedError).cause as ApplicationFailure;
        };
        const bad = roundSpec(root, `${root}/norefs.jsonl`, { labelledFineTuning: { targetTemplate: 'no slot' } });
        const invalid = await fail(`tao/baselines-bad/${queue}-spec`, bad);
        expect(invalid.type).toBe('InvalidRunSpec');
        expect(invalid.message).toContain('baselines.labelledFineTuning.targetTemplate: must contain "{reference}"');

        // evaluation by a scorer that needs no reference, so only the labelled arm lacks them
        const spec = roundSpec(root, `${root}/norefs.jsonl`, { labelledFineTuning: {}, bestOfN: {} });
        spec.evaluation = { heldOutFraction: 0.4, reuseTrainingScorers: true };
        const missing = await fail(`tao/baselines-bad/${queue}-refs`, spec);
        const messages: string[] = [];
        for (let c: Error | undefined = missing; c; c = (c as { cause?: Error }).cause) messages.push(c.message);
        expect(messages.join('\n')).toMatch(
          /baselines\.labelledFineTuning: none of the \d+ training prompt\(s\) carries a 'reference'/,
        );
        // the labelled arm's prepare is the round's first job: nothing else ran
        expect(fs.readdirSync(path.join(dir, 'stages')).sort()).toEqual(['prepare']);
        expect(fs.readdirSync(path.join(dir, 'stages', 'prepare'))).toHaveLength(1);
      });
    } finally {
      await close();
    }
  });
});
