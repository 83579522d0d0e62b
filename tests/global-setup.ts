/**
 * Starts the real components once per test run: a Temporal dev server (with the Web UI) and a SeaweedFS S3
 * server, on fixed loopback ports distinct from `tao dev`'s, and makes sure the Python venv exists.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { portOpen, waitUntil } from '../scripts/lib/processes.js';
import { startS3Dev, type S3Dev } from '../scripts/lib/s3-dev.js';
import { startDevServer, stopDevServer, type DevServer } from '../scripts/lib/temporal-dev.js';
import { venvBin } from '../scripts/lib/tools.js';

export const TEST_ROOT = path.resolve('test-output');

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUi: string;
    s3Endpoint: string;
    s3Bucket: string;
    s3Env: Record<string, string>;
    python: string;
  }
}

let temporal: DevServer | undefined;
let s3: S3Dev | undefined;

export async function setup(project: TestProject) {
  fs.mkdirSync(TEST_ROOT, { recursive: true });
  const python = venvBin('python');
  // TAO_TEST_PORT lets two test runs share a machine (default 17233; UI +1000, S3 +1100)
  const port = Number(process.env.TAO_TEST_PORT ?? 17233);
  const temporalDir = path.join(TEST_ROOT, `temporal-${port}`);
  if (stopDevServer(temporalDir)) {
    // left behind by an interrupted run: wait for its port to close
    await waitUntil('the old test server to stop', async () => !(await portOpen(port)), 30_000);
  }
  [temporal, s3] = await Promise.all([
    startDevServer({ dir: temporalDir, port, uiPort: port + 1000 }),
    startS3Dev({ dir: path.join(TEST_ROOT, `s3-${port}`, 'data'), basePort: port + 1100, bucket: 'tao-test' }),
  ]);
  if (!temporal.owned) {
    throw new Error(`port ${port} is taken by another process; stop it or set TAO_TEST_PORT to another base port`);
  }
  project.provide('temporalAddress', temporal.address);
  project.provide('temporalUi', temporal.uiUrl ?? '');
  project.provide('s3Endpoint', s3.endpoint);
  project.provide('s3Bucket', s3.bucket);
  project.provide('s3Env', s3.env);
  project.provide('python', python);
}

export async function teardown() {
  await Promise.all([temporal?.stop?.(), s3?.stop()]);
}
