/** Builds a worker on task queue `tao` with the round workflow and activities wired to real dependencies. */
import { KubeConfig } from '@kubernetes/client-node';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import { openStore } from '../activities/artifacts/open-store.js';
import type { ArtifactStore } from '../activities/artifacts/store.js';
import { KubernetesExecutor } from '../activities/executors/kubernetes/kubernetes-executor.js';
import { LocalExecutor } from '../activities/executors/local.js';
import { dataConverterFromEnv } from './codec.js';
import { defaultPython, jobsCodeVersion, jobsSrc, kubernetesEnv, REPO_ROOT, taskQueue, temporalEnv } from './config.js';

export interface TaoWorkerOptions {
  connection?: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Directory that `file:relative` URIs resolve against (default: the current directory). */
  baseDir?: string;
  python?: string;
  /** Cluster access for the kubernetes executor (default: KUBECONFIG, ~/.kube/config or in-cluster). */
  kubeConfig?: KubeConfig;
  /** Override parts of the activity dependencies (tests). */
  deps?: Partial<ActivityDeps>;
  workerOptions?: Partial<WorkerOptions>;
}

/** The kubernetes executor, when this worker is configured for one (TAO_EXECUTOR_NAMESPACE; workers/config.ts). */
export function kubernetesExecutorFromEnv(
  options: Pick<TaoWorkerOptions, 'kubeConfig'> = {},
  env: NodeJS.ProcessEnv = process.env,
): KubernetesExecutor | undefined {
  const settings = kubernetesEnv(env);
  if (!settings) return undefined;
  let kubeConfig = options.kubeConfig;
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
  }
  // no store of its own: each job's log goes to its round's store (RunContext.store, opened from the spec)
  return new KubernetesExecutor({
    kubeConfig,
    config: settings.stages,
    grace: settings.grace,
    streamLogs: settings.streamLogs,
  });
}

export function defaultDeps(
  options: TaoWorkerOptions = {},
): ActivityDeps & { local: LocalExecutor; kubernetes?: KubernetesExecutor } {
  const src = jobsSrc();
  const stores = new Map<string, ArtifactStore>();
  const kubernetes = kubernetesExecutorFromEnv(options);
  // A worker in the cluster (k8s/images/worker.Dockerfile) has no Python: it runs stages only as Jobs, and a
  // spec asking for the local executor fails with "executor local is not configured on this worker".
  let python: string | undefined;
  try {
    python = options.python ?? defaultPython();
  } catch (e) {
    if (!kubernetes) throw e;
  }
  const local = new LocalExecutor({ python: python ?? 'python3', jobsSrc: src });
  const executors: ActivityDeps['executors'] = python ? { local } : {};
  if (kubernetes) executors.kubernetes = kubernetes;
  return {
    // the one place a round's store is opened, from the spec's own artifacts settings (one client per distinct
    // settings, reused across activities); the executors get it per job
    storeFor: (artifacts) => {
      const key = JSON.stringify(artifacts.s3 ?? {});
      let store = stores.get(key);
      if (!store) stores.set(key, (store = openStore(artifacts)));
      return store;
    },
    executors,
    // A worker that runs stages as Jobs versions them by the stage image(s), which it cannot hash: the jobs
    // package it ships is built from the same sources, so its hash stands for the images.
    codeVersion: jobsCodeVersion(src),
    baseDir: options.baseDir ?? process.cwd(),
    local,
    kubernetes,
    ...options.deps,
  };
}

export async function createTaoWorker(options: TaoWorkerOptions = {}) {
  const env = temporalEnv();
  // Payload encryption when TAO_CODEC_KEY / TAO_CODEC_KEY_FILE is set (workers/codec.ts); a bad key fails here.
  const dataConverter = dataConverterFromEnv();
  const connection = options.connection ?? (await NativeConnection.connect(env.connection));
  const deps = defaultDeps(options);
  const worker = await Worker.create({
    connection,
    namespace: options.namespace ?? env.namespace,
    taskQueue: options.taskQueue ?? taskQueue(),
    workflowsPath: new URL('../workflows/index.ts', import.meta.url).pathname,
    activities: createActivities(deps),
    dataConverter,
    // Stage activities mostly wait on child processes or Jobs: many can run at once without CPU pressure.
    maxConcurrentActivityTaskExecutions: 50,
    shutdownGraceTime: '10s',
    ...options.workerOptions,
  });
  // Jobs outlive the worker (the next one adopts them); only the shared watches stop with it.
  const close = () => deps.kubernetes?.close();
  return { worker, connection, deps, repoRoot: REPO_ROOT, close };
}
