/**
 * Fault: the Temporal server killed (SIGKILL) in the middle of a round and restarted on the same database.
 * A dev server of the test's own (persistent SQLite file, its own loopback ports), a real `tao worker`
 * process on the scripted jobs; the server dies while the train job runs and is back some seconds later.
 * - Back within the heartbeat timeout: the worker and the job ride it out.
 * - Down longer than the heartbeat timeout (heartbeats are lost meanwhile; what the soak met): the server
 *   times the attempt out on its restart and Temporal retries it while its job still runs. The timed-out
 *   attempt keeps its job and publishes it; the retry waits on the stage key's lease for that manifest
 *   (decision 0004) instead of launching the job again.
 * Either way the round completes and no stage job is launched twice.
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

const ONCE = { prepare: 1, generate: 2, score: 2, dataset: 1, train: 1, evaluate: 1 };

/**
 * A round whose server is killed while the train job (`trainS` seconds) runs and restarted `outageS` later;
 * returns its result, the launches, and the highest activity attempt its history started.
 */
async function roundThroughServerKill(name: string, o: { heartbeatS: number; trainS: number; outageS: number }) {
  const port = await freePortBlock(12);
  const dir = path.resolve('test-output', `fault-${name}-${port}`);
  const start = () => startDevServer({ dir, port, headless: true, persistent: true });
  let server: DevServer = await start();
  const s = scripted();
  s.setScript({ train: { steps: 20, sleep: o.trainS } });
  const queue = uniqueQueue(`fault-${name}`);
  const worker = startWorkerProcess({
    address: server.address,
    queue,
    python: inject('python'),
    scriptFile: s.scriptFile,
    launchLog: s.launchLog,
    log: path.join(dir, 'worker.log'),
  });
  try {
    const spec = roundSpec(fileRoot(`fault-${name}`), {
      name: name.replace(/-/g, ''),
      executor: { type: 'local', heartbeatTimeoutSeconds: o.heartbeatS },
    });
    const workflowId = `tao/fault-${name}/${queue}`;
    let connection = await Connection.connect({ address: server.address });
    await new Client({ connection }).workflow.start(ROUND_WORKFLOW, { taskQueue: queue, workflowId, args: [spec] });
    await until('the train job to start', () => s.launches().some((l) => l.stage === 'train'), 180_000);

    await sleep(1000);
    await killGroup(server.child!);
    await until('the server port to close', async () => !(await portOpen(port)), 30_000);
    await connection.close();
    await sleep(o.outageS * 1000);
    server = await start();
    expect(server.owned).toBe(true);

    connection = await Connection.connect({ address: server.address });
    const handle = new Client({ connection }).workflow.getHandle(workflowId);
    const result = (await handle.result()) as RoundResult;
    const history = await handle.fetchHistory();
    await connection.close();
    const attempts = (history.events ?? []).flatMap((e) => e.activityTaskStartedEventAttributes?.attempt ?? []);
    return { result, launches: readLaunches(s.launchLog), maxAttempt: Math.max(...attempts) };
  } finally {
    await killGroup(worker, 'SIGTERM');
    await server.stop?.();
  }
}

describe('fault: Temporal server killed mid-round', () => {
  it('restarted on the same database: the round completes, no stage job launched twice', async () => {
    // heartbeat timeout well above the outage: the attempt must survive it, not be timed out and re-run
    const { result, launches } = await roundThroughServerKill('temporal', { heartbeatS: 60, trainS: 8, outageS: 3 });
    expect(result).toMatchObject({ runName: 'temporal', promoted: true });
    expect(launchesPerStage(launches)).toEqual(ONCE);
    expect(launchedMoreThan(launches, 1)).toEqual({});
  });

  it('down longer than the heartbeat timeout: the timed-out attempt is retried while its job runs, the retry waits for that job (launched once)', async () => {
    // the shortest heartbeat timeout a spec allows, well below the outage: the attempt is timed out
    const { result, launches, maxAttempt } = await roundThroughServerKill('heartbeat', {
      heartbeatS: 5,
      trainS: 24,
      outageS: 10,
    });
    expect(maxAttempt).toBeGreaterThan(1); // the fault really happened: an attempt was timed out and retried
    expect(result).toMatchObject({ runName: 'heartbeat', promoted: true });
    // failed before decision 0004: train was launched twice (the retry ran it again, the timed-out attempt
    // took its NOT_FOUND for a closed run and killed its own job)
    expect(launchesPerStage(launches)).toEqual(ONCE);
    expect(launchedMoreThan(launches, 1)).toEqual({});
  });
});
