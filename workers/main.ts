/** `tao worker`: runs a worker until SIGINT/SIGTERM (the SDK's shutdown signals), then drains. */
import { Connection } from '@temporalio/client';
import { ensureSearchAttributes } from './search-attributes.js';
import { temporalEnv } from './config.js';
import { createTaoWorker } from './create-worker.js';

export async function runWorker(options: { baseDir?: string } = {}): Promise<void> {
  const env = temporalEnv();
  const client = await Connection.connect(env.connection);
  const added = await ensureSearchAttributes(client, env.namespace).finally(() => client.close());
  if (added.length) console.error(`registered search attributes in ${env.namespace}: ${added.join(', ')}`);
  const { worker, connection, close } = await createTaoWorker(options);
  console.error(`tao worker: task queue ${worker.options.taskQueue}, namespace ${worker.options.namespace}`);
  try {
    await worker.run();
  } finally {
    await close();
    await connection.close();
  }
}
