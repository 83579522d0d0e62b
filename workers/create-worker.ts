/** Builds a worker on task queue `tao` with the round workflow and activities wired to real dependencies. */
import { KubeConfig } from '@kubernetes/client-node';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import { openStore } from '../activities/artifacts/open-store.js';
import { DEFAULT_GRACE } from '../activities/executors/kubernetes/classify.js';
import { KubernetesExecutor } from '../activities/executors/kubernetes/kubernetes-executor.js';
import { LocalExecutor } from '../activities/executors/local.js';
import { TASK_QUEUE } from '../common/constants.js';
import { dataConverterFromEnv } from './codec.js';
import { defaultPython, JOBS_SRC, jobsCodeVersion, REPO_ROOT, temporalEnv } from './config.js';
import { envNumber, stageTemplatesFromEnv } from './stage-templates.js';

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

/**
 * The kubernetes executor, when this worker is configured for one: `TAO_EXECUTOR_NAMESPACE` names the namespace
 * of the stage Jobs (set by the kustomize ConfigMap), the TAO_STAGE_* variables their templates, and
 * TAO_PENDING_GRACE_SECONDS (stuck Pending shown in heartbeats; default 300), TAO_PENDING_TIMEOUT_SECONDS
 * (then the stage fails as StageUnschedulable and its Job is deleted; default 3600),
 * TAO_IMAGE_PULL_GRACE_SECONDS (ImagePullBackOff tolerated this long; default 300) how long a Job may wait.
 * TAO_STREAM_LOGS=false stops copying pod logs to the store (one follow stream per running pod) where the
 * cluster's own log pipeline keeps them; failure messages then carry only the termination message.
 */
export function kubernetesExecutorFromEnv(
  options: Pick<TaoWorkerOptions, 'kubeConfig'> = {},
  env: NodeJS.ProcessEnv = process.env,
): KubernetesExecutor | undefined {
  if (!env.TAO_EXECUTOR_NAMESPACE) return undefined;
  let kubeConfig = options.kubeConfig;
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
  }
  const seconds = (name: string, fallbackMs: number) => {
    const s = envNumber(env, name, (n) => Number.isFinite(n) && n > 0, 'a positive number of seconds');
    return s === undefined ? fallbackMs : s * 1000;
  };
  const grace = {
    pendingMs: seconds('TAO_PENDING_GRACE_SECONDS', DEFAULT_GRACE.pendingMs),
    pendingTimeoutMs: seconds('TAO_PENDING_TIMEOUT_SECONDS', DEFAULT_GRACE.pendingTimeoutMs),
    imagePullMs: seconds('TAO_IMAGE_PULL_GRACE_SECONDS', DEFAULT_GRACE.imagePullMs),
  };
  const streamLogs = env.TAO_STREAM_LOGS ?? 'true';
  if (streamLogs !== 'true' && streamLogs !== 'false') {
    throw new Error(`TAO_STREAM_LOGS: must be true or false, got "${streamLogs}"`);
  }
  return new KubernetesExecutor({
    kubeConfig,
    config: stageTemplatesFromEnv(env),
    store: openStore({}),
    grace,
    streamLogs: streamLogs === 'true',
  });
}

export function defaultDeps(
  options: TaoWorkerOptions = {},
): ActivityDeps & { local: LocalExecutor; kubernetes?: KubernetesExecutor } {
  const storeFor: ActivityDeps['storeFor'] = (artifacts) => openStore(artifacts);
  // TAO_JOBS_SRC points the local executor at another jobs package (tests use a scripted stand-in).
  const jobsSrc = process.env.TAO_JOBS_SRC ?? JOBS_SRC;
  const kubernetes = kubernetesExecutorFromEnv(options);
  // A worker in the cluster (k8s/images/worker.Dockerfile) has no Python: it runs stages only as Jobs, and a
  // spec asking for the local executor fails with "executor local is not configured on this worker".
  let python: string | undefined;
  try {
    python = options.python ?? defaultPython();
  } catch (e) {
    if (!kubernetes) throw e;
  }
  const local = new LocalExecutor({ python: python ?? 'python3', jobsSrc, store: openStore({}) });
  const executors: ActivityDeps['executors'] = python ? { local } : {};
  if (kubernetes) executors.kubernetes = kubernetes;
  return {
    storeFor,
    executors,
    // A worker that runs stages as Jobs versions them by the stage image(s), which it cannot hash: the jobs
    // package it ships is built from the same sources, so its hash stands for the images.
    codeVersion: jobsCodeVersion(jobsSrc),
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
    taskQueue: options.taskQueue ?? process.env.TAO_TASK_QUEUE ?? TASK_QUEUE,
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
