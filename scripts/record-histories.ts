/**
 * Records workflow histories for the replay tests (docs/design.md#rule-12): runs rounds against a throwaway dev
 * server with the scripted stand-in jobs and saves each history as JSON under tests/replay/histories/.
 * Re-record only on purpose (a deliberate, versioned workflow change); the replay test guards old ones.
 *
 *   node --import tsx scripts/record-histories.ts
 */
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createActivities } from '../activities/index.js';
import { openStore } from '../activities/artifacts/open-store.js';
import { LocalExecutor } from '../activities/executors/local.js';
import { FLYWHEEL_WORKFLOW, ROUND_WORKFLOW } from '../common/constants.js';
import type { RunSpecInput } from '../common/run-spec.js';
import { progressQuery, retryStageUpdate, skipStageUpdate } from '../workflows/messages.js';
import { startDevServer } from './dev/temporal-dev.js';
import { venvBin } from './dev/tools.js';

Runtime.install({ logger: new DefaultLogger('WARN') });
const out = path.resolve('tests/replay/histories');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tao-record-'));
const script = path.join(tmp, 'script.json');
const server = await startDevServer({ dir: path.join(tmp, 'temporal'), port: 27400, headless: true });
const connection = await Connection.connect({ address: server.address });
const client = new Client({ connection });
const native = await NativeConnection.connect({ address: server.address });
const executor = new LocalExecutor({
  python: venvBin('python'),
  jobsSrc: path.resolve('tests/fixtures/scripted-jobs'),
  store: openStore({}),
  env: { TAO_SCRIPT: script },
});
const worker = await Worker.create({
  connection: native,
  taskQueue: 'record',
  workflowsPath: path.resolve('workflows/index.ts'),
  activities: createActivities({
    storeFor: openStore,
    executors: { local: executor },
    codeVersion: 'record',
    baseDir: tmp,
  }),
});

function spec(name: string): RunSpecInput {
  const root = pathToFileURL(path.join(tmp, name)).href;
  fs.mkdirSync(new URL(root), { recursive: true });
  fs.writeFileSync(new URL(`${root}/prompts.jsonl`), '{"id":"a","prompt":"x"}\n{"id":"b","prompt":"y"}\n');
  return {
    apiVersion: 'tao/v1',
    name,
    baseModel: 'tiny://rec',
    prompts: { uri: `${root}/prompts.jsonl` },
    evaluation: { heldOutFraction: 0.5, reuseTrainingScorers: true },
    generation: { shards: 2, samplesPerPrompt: 2 },
    scoring: { scorers: [{ name: 'r', type: 'regex', params: { pattern: 'a' } }] },
    training: {},
    executor: { type: 'local', heartbeatTimeoutSeconds: 10 },
    artifacts: { uri: root },
  };
}

async function waitFor(id: string, stage: string) {
  const handle = client.workflow.getHandle(id);
  for (;;) {
    const p = await handle.query(progressQuery);
    if (p.waiting.filter((w) => w.stage === stage).length) return handle;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function save(id: string, file: string) {
  const history = await client.workflow.getHandle(id).fetchHistory();
  fs.writeFileSync(path.join(out, file), historyToJSON(history) + '\n');
  console.log(`recorded ${file}: ${history.events?.length} events`);
}

await worker.runUntil(async () => {
  fs.writeFileSync(script, '{}');
  await client.workflow.execute(ROUND_WORKFLOW, {
    taskQueue: 'record',
    workflowId: 'rec-complete',
    args: [spec('complete')],
  });
  await save('rec-complete', 'tao-round-complete.json');

  fs.writeFileSync(script, JSON.stringify({ train: { exit: 65, reason: 'recorded failure' } }));
  await client.workflow.start(ROUND_WORKFLOW, { taskQueue: 'record', workflowId: 'rec-retry', args: [spec('retry')] });
  const retry = await waitFor('rec-retry', 'train');
  fs.writeFileSync(script, '{}');
  await retry.executeUpdate(retryStageUpdate, { args: [{ stage: 'train' }] });
  await retry.result();
  await save('rec-retry', 'tao-round-retry-stage.json');

  fs.writeFileSync(script, JSON.stringify({ generate: { exit: 64, reason: 'recorded failure' } }));
  await client.workflow.start(ROUND_WORKFLOW, { taskQueue: 'record', workflowId: 'rec-skip', args: [spec('skip')] });
  const skip = await waitFor('rec-skip', 'generate');
  fs.writeFileSync(script, '{}');
  while ((await skip.query(progressQuery)).waiting.length < 2) await new Promise((r) => setTimeout(r, 200));
  await skip.executeUpdate(skipStageUpdate, { args: [{ stage: 'generate', shard: 0 }] });
  await skip.executeUpdate(retryStageUpdate, { args: [{ stage: 'generate', shard: 1 }] });
  await skip.result();
  await save('rec-skip', 'tao-round-skip-shard.json');

  // a flywheel run: collect, one round as a child, commit; then a run with nothing new
  const root = pathToFileURL(path.join(tmp, 'fw')).href;
  fs.mkdirSync(new URL(`${root}/logs/`), { recursive: true });
  const line = (t: string) => JSON.stringify({ messages: [{ role: 'user', content: t }] });
  fs.writeFileSync(new URL(`${root}/logs/day-1.jsonl`), ['a', 'b', 'c', 'd'].map(line).join('\n') + '\n');
  const { name: _n, round: _r, prompts: _p, ...template } = spec('fw');
  const flywheel = {
    apiVersion: 'tao/v1',
    name: 'fw',
    source: { uri: `${root}/logs/` },
    minNewPrompts: 2,
    template: { ...template, artifacts: { uri: root } },
  };
  await client.workflow.execute(FLYWHEEL_WORKFLOW, {
    taskQueue: 'record',
    workflowId: 'rec-flywheel',
    args: [flywheel],
  });
  await save('rec-flywheel', 'tao-flywheel-round.json');
  await client.workflow.execute(FLYWHEEL_WORKFLOW, {
    taskQueue: 'record',
    workflowId: 'rec-flywheel-empty',
    args: [flywheel],
  });
  await save('rec-flywheel-empty', 'tao-flywheel-nothing-new.json');
});
await native.close();
await connection.close();
await server.stop?.();
fs.rmSync(tmp, { recursive: true, force: true });
