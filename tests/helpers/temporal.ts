/** Workers and clients against the test run's real Temporal dev server. */
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import {
  bundleWorkflowCode,
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { inject } from 'vitest';
import { createActivities, type ActivityDeps } from '../../activities/index.js';

// Workers log every state change and activity failure at INFO/WARN; the tests assert on failures themselves.
Runtime.install({ logger: new DefaultLogger('ERROR') });

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();

/**
 * One workflow bundle per test file and failure converter (bundling is the slow part of creating a worker). A
 * data converter with `failureConverterPath` (the codec's, which encrypts failure messages) must be bundled in,
 * as production workers do, or workflow-made failures would reach the history in clear.
 */
export function workflowBundle(failureConverterPath?: string): Promise<WorkflowBundleWithSourceMap> {
  const key = failureConverterPath ?? '';
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = bundleWorkflowCode({
      workflowsPath: path.resolve('workflows/index.ts'),
      failureConverterPath,
      logger: quietLogger,
    });
    bundles.set(key, bundle);
  }
  return bundle;
}

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** A client of the test server; `dataConverter` e.g. with a payload codec (default: plain JSON payloads). */
export async function testClient(
  options: { dataConverter?: DataConverter } = {},
): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  return {
    client: new Client({ connection, dataConverter: options.dataConverter }),
    close: () => connection.close(),
  };
}

export function uniqueQueue(name: string): string {
  return `${name}-${randomUUID().slice(0, 8)}`;
}

/** Runs `fn` while a worker with the given activity deps (and optional data converter) polls `taskQueue`. */
export async function withWorker<T>(
  taskQueue: string,
  deps: ActivityDeps,
  fn: () => Promise<T>,
  options: { dataConverter?: DataConverter } = {},
): Promise<T> {
  const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowBundle: await workflowBundle(options.dataConverter?.failureConverterPath),
    activities: createActivities(deps),
    dataConverter: options.dataConverter,
    shutdownGraceTime: '2s',
  });
  try {
    return await worker.runUntil(fn());
  } finally {
    await connection.close();
  }
}
