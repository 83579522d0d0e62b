/**
 * The demo round (the README's first command): a Temporal dev server with the Web UI (left running so the
 * run stays visible), a worker in this process, and one complete round of examples/demo/round.json on the
 * embedded default: tiny model built on the spot, real generation, rule scoring, LoRA + DPO, evaluation.
 * Running it again reuses every finished stage from its manifest.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import path from 'node:path';
import type { RoundResult } from '../common/types.js';
import { createTaoWorker } from '../workers/create-worker.js';
import { connectClient } from './cli/client.js';
import { follow, startRound, summarise, uiLink } from './cli/round.js';
import { loadSpecFile } from './cli/spec-file.js';
import { startDevServer } from './dev/temporal-dev.js';
import { cacheDir } from './dev/tools.js';

// The demo shows progress bars; worker lifecycle logs would only interleave with them.
Runtime.install({ logger: new DefaultLogger('WARN') });

const specFile = process.argv[2] ?? 'examples/demo/round.json';
const { document, spec } = loadSpecFile(specFile);
const dir = path.join(cacheDir(), 'dev');
const server = await startDevServer({ dir, persistent: true });
process.env.TEMPORAL_ADDRESS ??= server.address;
console.error(
  server.owned
    ? `started a Temporal dev server at ${server.address} (Web UI ${server.uiUrl}); it keeps running after the demo: stop it with "npm run tao -- dev --stop"`
    : `using the Temporal server already running at ${server.address}`,
);

const started = Date.now();
const { worker } = await createTaoWorker();
const { client, close } = await connectClient();
const result = await worker.runUntil(async () => {
  const handle = await startRound(client, document, spec);
  console.error(
    `round ${handle.workflowId} started; watch it in the Temporal Web UI: ${uiLink(handle.workflowId, handle.firstExecutionRunId)}`,
  );
  await follow(handle);
  return { result: (await handle.result()) as RoundResult, runId: handle.firstExecutionRunId };
});
await close();
console.log(summarise(result.result, result.runId));
console.log(`  finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (!result.result.promoted) process.exitCode = 3;
