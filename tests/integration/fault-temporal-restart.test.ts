/**
 * Fault: the Temporal server killed (SIGKILL) in the middle of a round and restarted on the same database.
 * A dev server of the test's own (persistent SQLite file, its own loopback ports), a real `tao worker`
 * process on the scripted jobs; the server dies while the train job runs and is back a few seconds later.
 * The worker and the job ride it out: the round completes and no stage job is launched twice.
 */
import { Client, Connection } from '@temporalio/client';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundResult } from '../../common/types.js';
import { portOpen } from '../../scripts/dev/processes.js';
import { startDevServer, type DevServer } from '../../scripts/dev/temporal-dev.js';
import { fileRoot } from '../helpers/env.js';
import {
  freePortBlock,
  killGroup,
  launchedMoreThan,
  launchesPerStage,
  readLaunches,
  sleep,
  startWorkerProcess,
  until,
} from '../helpers/faults.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { uniqueQueue } from '../helpers/temporal.js';

describe('fault: Temporal server killed mid-round', () => {
  it('restarted on the same database: the round completes, no stage job launched twice', async () => {
    const port = await freePortBlock(12);
    const dir = path.resolve('test-output', `fault-temporal-${port}`);
    const start = () => startDevServer({ dir, port, headless: true, persistent: true });
    let server: DevServer = await start();
    const s = scripted();
    s.setScript({ train: { steps: 10, sleep: 8 } });
    const queue = uniqueQueue('fault-temporal');
    const worker = startWorkerProcess({
      address: server.address,
      queue,
      python: inject('python'),
      scriptFile: s.scriptFile,
      launchLog: s.launchLog,
      log: path.join(dir, 'worker.log'),
    });
    try {
      // heartbeat timeout well above the outage: the attempt must survive it, not be timed out and re-run
      const spec = roundSpec(fileRoot('fault-temporal'), {
        name: 'faulttemporal',
        executor: { type: 'local', heartbeatTimeoutSeconds: 60 },
      });
      const workflowId = `tao/fault-temporal/${queue}`;
      let connection = await Connection.connect({ address: server.address });
      await new Client({ connection }).workflow.start(ROUND_WORKFLOW, { taskQueue: queue, workflowId, args: [spec] });
      await until('the train job to start', () => s.launches().some((l) => l.stage === 'train'), 180_000);

      await killGroup(server.child!);
      await until('the server port to close', async () => !(await portOpen(port)), 30_000);
      await connection.close();
      await sleep(3000);
      server = await start();
      expect(server.owned).toBe(true);

      connection = await Connection.connect({ address: server.address });
      const result = (await new Client({ connection }).workflow.getHandle(workflowId).result()) as RoundResult;
      await connection.close();
      expect(result).toMatchObject({ runName: 'faulttemporal', promoted: true });
      const launches = readLaunches(s.launchLog);
      expect(launchesPerStage(launches)).toEqual({
        prepare: 1,
        generate: 2,
        score: 2,
        dataset: 1,
        train: 1,
        evaluate: 1,
      });
      expect(launchedMoreThan(launches, 1)).toEqual({});
    } finally {
      await killGroup(worker, 'SIGTERM');
      await server.stop?.();
    }
  });
});
