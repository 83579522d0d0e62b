/**
 * A worker killed (SIGKILL) in the middle of a stage: its job dies with it (no orphan), a new worker picks
 * the round up after the heartbeat timeout, and the round completes without re-running finished stages.
 * Workers run as real `tao worker` processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundResult } from '../../common/types.js';
import { fileRoot } from '../helpers/env.js';
import { alive } from '../helpers/process.js';
import { scripted, SCRIPTED_JOBS } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue } from '../helpers/temporal.js';

function startWorker(queue: string, s: ReturnType<typeof scripted>, log: string): ChildProcess {
  const out = fs.openSync(log, 'a');
  return spawn(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', 'worker'], {
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TAO_TASK_QUEUE: queue,
      TAO_JOBS_SRC: SCRIPTED_JOBS,
      TAO_PYTHON: inject('python'),
      TAO_SCRIPT: s.scriptFile,
      TAO_LAUNCH_LOG: s.launchLog,
    },
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('worker crash mid-stage', () => {
  it('resumes on a new worker without re-running finished stages and leaves no orphaned job', async () => {
    const s = scripted();
    s.setScript({ train: { steps: 100, sleep: 100 } });
    const queue = uniqueQueue('crash');
    const log = path.resolve('test-output', `${queue}-workers.log`);
    const root = fileRoot('crash');
    const { client, close } = await testClient();
    const first = startWorker(queue, s, log);
    const handle = await client.workflow.start(ROUND_WORKFLOW, {
      taskQueue: queue,
      workflowId: `tao/crash/${queue}`,
      args: [roundSpec(root)],
    });
    await until('the train job to start', () => s.launches().some((l) => l.stage === 'train'));
    const trainPid = s.launches().find((l) => l.stage === 'train')!.pid;
    expect(alive(trainPid)).toBe(true);

    first.kill('SIGKILL');
    await until('the orphaned train job to die with its worker', () => !alive(trainPid), 10_000);

    s.setScript({}); // the retry runs quickly
    const second = startWorker(queue, s, log);
    try {
      const result = (await handle.result()) as RoundResult;
      expect(result.promoted).toBe(true);
      const count = (stage: string) => s.launches().filter((l) => l.stage === stage).length;
      expect({
        prepare: count('prepare'),
        generate: count('generate'),
        score: count('score'),
        dataset: count('dataset'),
        train: count('train'),
        evaluate: count('evaluate'),
      }).toEqual({ prepare: 1, generate: 2, score: 2, dataset: 1, train: 2, evaluate: 1 });
    } finally {
      second.kill('SIGTERM');
      await close();
    }
  });
});
