/**
 * Starts the real components once per test run: a Temporal dev server (with the Web UI), a SeaweedFS S3
 * server and a Kubernetes control plane with fake GPU nodes (scripts/dev/k8s-dev.ts), on fixed loopback ports
 * distinct from `tao dev`'s, and makes sure the Python venv exists.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { portOpen, waitUntil } from '..//scripts/dev/processes.js';
import { startK8sDev, type K8sDev } from '..//scripts/dev/k8s-dev.js';
import { startS3Dev, type S3Dev } from '..//scripts/dev/s3-dev.js';
import { startDevServer, stopDevServer, type DevServer } from '..//scripts/dev/temporal-dev.js';
import { venvBin } from '..//scripts/dev/tools.js';

export const TEST_ROOT = path.resolve('test-output');

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUi: string;
    s3Endpoint: string;
    s3Bucket: string;
    s3Env: Record<string, string>;
    python: string;
    /** The local Kubernetes control plane (admin kubeconfig file, server URL, the unbound user's token). */
    k8sKubeconfig: string;
    k8sServer: string;
    k8sRestrictedToken: string;
  }
}

let temporal: DevServer | undefined;
let s3: S3Dev | undefined;
let k8s: K8sDev | undefined;

export async function setup(project: TestProject) {
  fs.mkdirSync(TEST_ROOT, { recursive: true });
  const python = venvBin('python');
  // TAO_TEST_PORT lets two test runs share a machine (default 17233; UI +1000, S3 +1100)
  const port = Number(process.env.TAO_TEST_PORT ?? 17233);
  const temporalDir = path.join(TEST_ROOT, `temporal-${port}`);
  if (stopDevServer(temporalDir)) {
    // left behind by an interrupted run: wait for all its ports to close (gRPC, HTTP, metrics, UI); its
    // metrics port once outlived the gRPC port and broke the next start
    const ports = [port, port + 10, port + 11, port + 1000];
    await waitUntil(
      'the old test server to stop',
      async () => !(await Promise.all(ports.map((p) => portOpen(p)))).some(Boolean),
      30_000,
    );
  }
  // Kubernetes control plane on base +2000..+2004 (binaries built once by scripts/test.sh and cached)
  const k8sBase = port + 2000;
  [temporal, s3, k8s] = await Promise.all([
    startDevServer({ dir: temporalDir, port, uiPort: port + 1000 }),
    startS3Dev({ dir: path.join(TEST_ROOT, `s3-${port}`, 'data'), basePort: port + 1100, bucket: 'tao-test' }),
    startK8sDev({ dir: path.join(TEST_ROOT, `k8s-${k8sBase}`), basePort: k8sBase }),
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
  project.provide('k8sKubeconfig', k8s.kubeconfigPath);
  project.provide('k8sServer', k8s.server);
  project.provide('k8sRestrictedToken', k8s.restrictedToken);
}

export async function teardown() {
  await Promise.all([temporal?.stop?.(), s3?.stop(), k8s?.stop()]);
}
