/**
 * Bundles the workflow code exactly as a worker would. A Node built-in (or a Node-only module) reaching a
 * workflow file fails here, in CI, instead of in a worker at start-up.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';

const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
const { code } = await bundleWorkflowCode({
  workflowsPath,
  logger: { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error },
});
console.log(`workflow bundle ok: ${(code.length / 1024).toFixed(0)} KiB`);
