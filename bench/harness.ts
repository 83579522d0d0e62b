/** What every benchmark needs: a headless dev server of its own, a client, and a worker with the real deps. */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import path from 'node:path';
import { createActivities } from '../activities/index.js';
import { startDevServer } from '..//scripts/dev/temporal-dev.js';
import { defaultDeps } from '../workers/create-worker.js';

export async function benchHarness(dir: string, port: number, taskQueue: string) {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const server = await startDevServer({ dir: path.join(dir, 'temporal'), port, headless: true });
  const connection = await Connection.connect({ address: server.address });
  const native = await NativeConnection.connect({ address: server.address });
  const deps = defaultDeps();
  const worker = await Worker.create({
    connection: native,
    taskQueue,
    workflowsPath: path.resolve('workflows/index.ts'),
    activities: createActivities(deps),
  });
  return {
    client: new Client({ connection }),
    deps,
    worker,
    async close() {
      await native.close();
      await connection.close();
      await server.stop?.();
    },
  };
}
