/**
 * A real node (scripts/dev/real-node.ts: kubelet + containerd + runc + CNI bridge) joined to the shared test
 * control plane for one test file, with the images it needs built and pushed to the local registry
 * (scripts/k8s/build-images.sh, cached by content). Test files run one at a time (vitest.config.ts), so one
 * node at a time; it is stopped after the file, and stop() leaves no container, pod or bridge behind.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, inject } from 'vitest';
import { ensureK8sBinaries } from '../../scripts/dev/k8s-dev.js';
import { startRealNode, type RealNode } from '../../scripts/dev/real-node.js';
import { REPO_ROOT } from '../../scripts/dev/tools.js';
import { adminKubeConfig } from './k8s.js';

const run = promisify(execFile);

/** Builds (cached) and pushes images; returns name -> registry reference (e.g. probe -> localhost:5000/tao-probe:<hash>). */
export async function buildImages(names: string[]): Promise<Record<string, string>> {
  await run('bash', [path.join(REPO_ROOT, 'scripts/k8s/registry.sh')]);
  const { stdout } = await run('bash', [path.join(REPO_ROOT, 'scripts/k8s/build-images.sh'), ...names], {
    maxBuffer: 64 << 20,
    timeout: 60 * 60_000,
  });
  const images: Record<string, string> = {};
  for (const line of stdout.trim().split('\n')) {
    const [name, ref] = line.split('=');
    if (name && ref) images[name] = ref;
  }
  for (const n of names) if (!images[n]) throw new Error(`build-images.sh printed no reference for ${n}`);
  return images;
}

export interface RealNodeContext {
  node: RealNode;
  images: Record<string, string>;
}

/** Starts the node (and builds `images` plus the pause image) before the file's tests; stops it after. */
export function useRealNode(images: string[], options: { workloadControllers?: boolean } = {}): () => RealNodeContext {
  let ctx: RealNodeContext | undefined;
  beforeAll(async () => {
    const built = await buildImages(['pause', ...images]);
    const port = Number(process.env.TAO_TEST_PORT ?? 17233);
    const node = await startRealNode({
      dir: path.resolve('test-output', `real-node-${port}`),
      basePort: port + 2010, // next to the control plane's +2000..+2004
      kubeconfigPath: inject('k8sKubeconfig'),
      kubeConfig: adminKubeConfig(),
      pauseImage: built.pause!,
      workloadControllers: options.workloadControllers ? { binDir: await ensureK8sBinaries() } : undefined,
    });
    ctx = { node, images: built };
  }, 60 * 60_000);
  afterAll(async () => {
    await ctx?.node.stop();
  }, 180_000);
  return () => {
    if (!ctx) throw new Error('the real node did not start (see beforeAll)');
    return ctx;
  };
}
