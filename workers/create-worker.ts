/** Builds a worker on task queue `tao` with the round workflow and activities wired to real dependencies. */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import { openStore } from '../activities/artifacts/open-store.js';
import { LocalExecutor } from '../activities/executors/local.js';
import { TASK_QUEUE } from '../common/constants.js';
import { dataConverterFromEnv } from './codec.js';
import { defaultPython, JOBS_SRC, jobsCodeVersion, REPO_ROOT, temporalEnv } from './config.js';

export interface TaoWorkerOptions {
  connection?: NativeConnection;
  namespace?: string;
  taskQueue?: string;
  /** Directory that `file:relative` URIs resolve against (default: the current directory). */
  baseDir?: string;
  python?: string;
  /** Override parts of the activity dependencies (tests). */
  deps?: Partial<ActivityDeps>;
  workerOptions?: Partial<WorkerOptions>;
}

export function defaultDeps(options: TaoWorkerOptions = {}): ActivityDeps & { local: LocalExecutor } {
  const storeFor: ActivityDeps['storeFor'] = (artifacts) => openStore(artifacts);
  // TAO_JOBS_SRC points the local executor at another jobs package (tests use a scripted stand-in).
  const jobsSrc = process.env.TAO_JOBS_SRC ?? JOBS_SRC;
  const local = new LocalExecutor({ python: options.python ?? defaultPython(), jobsSrc, store: openStore({}) });
  return {
    storeFor,
    executors: { local },
    codeVersion: jobsCodeVersion(jobsSrc),
    baseDir: options.baseDir ?? process.cwd(),
    local,
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
  return { worker, connection, deps, repoRoot: REPO_ROOT };
}
