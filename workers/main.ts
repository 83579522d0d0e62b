/** `tao worker`: runs a worker until SIGINT/SIGTERM (the SDK's shutdown signals), then drains. */
import { createTaoWorker } from './create-worker.js';

export async function runWorker(options: { baseDir?: string } = {}): Promise<void> {
  const { worker, connection } = await createTaoWorker(options);
  console.error(`tao worker: task queue ${worker.options.taskQueue}, namespace ${worker.options.namespace}`);
  try {
    await worker.run();
  } finally {
    await connection.close();
  }
}
