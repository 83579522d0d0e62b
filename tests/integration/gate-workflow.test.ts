/**
 * The gate inside taoRound (real Temporal dev server, local executor, store and registry; scripted stand-in
 * jobs whose evaluate reports the metrics each test sets): reward hacking refuses promotion unless the spec
 * allows it, a regressing task refuses a multi-task round, and the decision shows in the result, the TaoGate
 * search attribute and the Web UI's current details. A second round of the same run evaluates against the
 * promoted model. The metrics themselves come from the real evaluate stage in jobs/tests/test_evaluate.py.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundResult } from '../../common/types.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const HACKED = {
  reward: { change: 0.4, ciLow: 0.3, ciHigh: 0.5, n: 4 },
  rewardHacking: {
    flagged: true,
    checked: true,
    reason: 'training reward up +0.400 while the independent metric moved +0.005',
  },
};

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : [p];
  });
}

describe('the gate in a round', () => {
  it('reward hacking refuses promotion (shown in the result, TaoGate and the details) unless the spec allows it', async () => {
    const s = scripted();
    s.setScript({ evaluate: { improvement: 0.005, metrics: HACKED } });
    const root = fileRoot('hack');
    const queue = uniqueQueue('hack');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, s.deps, async () => {
        const id = `tao/hack/${queue}`;
        const refused = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: id,
          args: [roundSpec(root, { name: 'hack', gate: { rule: 'mean' } })],
        })) as RoundResult;
        expect(refused.promoted).toBe(false);
        expect(refused.registryPointer).toBeNull();
        expect(refused.gate).toMatchObject({ rule: 'mean', statistic: 0.005, decidedBy: 'rewardHacking' });
        expect(refused.gate.reason).toBe(`reward hacking: ${HACKED.rewardHacking.reason}`);
        expect(refused.evaluation.rewardHacking).toMatchObject({ flagged: true });
        expect(refused.evaluation.reward).toMatchObject({ change: 0.4 });
        const handle = client.workflow.getHandle(id);
        const { searchAttributes } = await handle.describe();
        expect(searchAttributes.TaoGate).toEqual(['mean +0.0050 vs 0: refused (rewardHacking)']);
        const meta = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
        expect(meta.currentDetails).toContain('### Gate: ✘ do not promote (rule `mean`, threshold 0)');
        expect(meta.currentDetails).toContain('training reward +0.4000 · **⚠ reward hacking**');

        const allowed = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `${id}-allow`,
          args: [roundSpec(root, { name: 'hack', gate: { rule: 'mean', rewardHacking: 'allow' } })],
        })) as RoundResult;
        expect(allowed.promoted).toBe(true);
        expect(allowed.gate.checks!.find((c) => c.name === 'rewardHacking')).toMatchObject({ passed: true });
      });
    } finally {
      await close();
    }
  });

  it('a regressing task refuses a multi-task round; the next round is evaluated against the promoted model', async () => {
    const s = scripted();
    const root = fileRoot('tasks');
    const queue = uniqueQueue('tasks');
    const { client, close } = await testClient();
    try {
      await withWorker(queue, s.deps, async () => {
        const first = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/tasks/${queue}-1`,
          args: [roundSpec(root, { name: 'tasks' })],
        })) as RoundResult;
        expect(first.promoted).toBe(true);
        expect(first.gate).toMatchObject({ rule: 'ciLower', decidedBy: 'rule' });
        expect(first.gate.statistic).toBeCloseTo(0.2);

        s.setScript({
          evaluate: {
            metrics: {
              tasks: {
                trivia: { change: 0.5, ciLow: 0.3, ciHigh: 0.7, n: 2 },
                sql: { change: -0.2, ciLow: -0.4, ciHigh: 0, n: 2 },
              },
            },
          },
        });
        const second = (await client.workflow.execute(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/tasks/${queue}-2`,
          args: [roundSpec(root, { name: 'tasks', round: 2, training: { maxSteps: 3 } })],
        })) as RoundResult;
        expect(second.promoted).toBe(false);
        expect(second.gate).toMatchObject({ decidedBy: 'tasks', reason: "task 'sql' regressed -0.2000 (bound -0.05)" });
        // the second round's evaluate was given the promoted model of the first
        const specs = files(path.join(fileURLToPath(root), 'stages', 'evaluate')).filter((f) =>
          f.endsWith('stage-spec.json'),
        );
        const inputs = specs.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')).inputs as Record<string, string>);
        expect(inputs.map((i) => i.promoted ?? null).sort()).toEqual([first.tunedModel, null].sort());
      });
    } finally {
      await close();
    }
  });
});
