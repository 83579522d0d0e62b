/**
 * The worker's whole environment, read and validated in this one file at start-up; a bad value names its
 * variable. (Payload-encryption keys are read by workers/codec.ts, which owns the key material.)
 *
 * Temporal connection: Temporal's own client configuration (`@temporalio/envconfig`), exactly as the `temporal`
 * CLI reads it: the TOML profiles `temporal config set` writes (`TEMPORAL_CONFIG_FILE`, default
 * `~/.config/temporalio/temporal.toml`; `TEMPORAL_PROFILE`, default "default"), overridden by
 * `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_GRPC_META_*`.
 *
 * Worker: TAO_TASK_QUEUE (default "tao"), TAO_CACHE_DIR (default ~/.cache/tao), TAO_PYTHON (the stage jobs'
 * interpreter; default the cached venv), TAO_JOBS_SRC (another jobs package; tests use a scripted stand-in).
 *
 * Kubernetes executor (on only when TAO_EXECUTOR_NAMESPACE is set):
 *   TAO_PENDING_GRACE_SECONDS     stuck Pending shown in heartbeats after this long (default 300)
 *   TAO_PENDING_TIMEOUT_SECONDS   then the stage fails as StageUnschedulable and its Job is deleted (default 3600)
 *   TAO_IMAGE_PULL_GRACE_SECONDS  ImagePullBackOff tolerated this long (default 300)
 *   TAO_STREAM_LOGS               false: do not copy pod logs to the store (the cluster's log pipeline keeps them)
 * Stage Job templates (the kustomize overlays set these through the tao-worker-config ConfigMap): *   TAO_EXECUTOR_NAMESPACE        namespace of the stage Jobs (default: tao)
 *   TAO_STAGE_IMAGE               image for every stage; TAO_STAGE_IMAGE_<STAGE> overrides one stage
 *   TAO_STAGE_SERVICE_ACCOUNT     service account of the stage pods (default: tao-stage)
 *   TAO_STAGE_ENV_FROM_SECRET     a Secret whose keys become the pods' environment (artifact-store credentials)
 *   TAO_STAGE_NODE_SELECTOR       JSON object;  TAO_STAGE_TOLERATIONS  JSON array
 *   TAO_STAGE_PRIORITY_CLASS      priorityClassName of the stage pods
 *   TAO_STAGE_BACKOFF_LIMIT, TAO_STAGE_ACTIVE_DEADLINE_SECONDS, TAO_STAGE_TTL_SECONDS   Job retry and backstops
 *   TAO_STAGE_MAX_RESTARTS, TAO_STAGE_RENDEZVOUS_TIMEOUT_SECONDS, TAO_STAGE_CLUSTER_DOMAIN   multi-node train
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_GRACE, type Grace } from '../activities/executors/kubernetes/classify.js';
import type { KubernetesStageConfig } from '../activities/executors/kubernetes/job-template.js';
import { TASK_QUEUE } from '../common/constants.js';
import { STAGES } from '../common/run-spec.js';

export type { KubernetesStageConfig };

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const JOBS_SRC = path.join(REPO_ROOT, 'jobs', 'src');

export interface TemporalEnv {
  address: string;
  namespace: string;
  /** Accepted by both `Connection.connect` (clients) and `NativeConnection.connect` (workers). */
  connection: NativeConnectionOptions & { address: string };
}

/** Temporal connection settings as the `temporal` CLI reads them (profile file, then TEMPORAL_* variables). */
export function temporalEnv(env: NodeJS.ProcessEnv = process.env): TemporalEnv {
  const file = env.TEMPORAL_CONFIG_FILE;
  // envconfig treats a missing file as "no file"; a file the user named explicitly must exist
  if (file && !existsSync(file)) throw new Error(`TEMPORAL_CONFIG_FILE: file ${file} does not exist`);
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
  } catch (e) {
    const profile = env.TEMPORAL_PROFILE ? ` (profile ${env.TEMPORAL_PROFILE})` : '';
    throw new Error(`Temporal connection settings${profile}: ${(e as Error).message}`);
  }
  const address = loaded.connectionOptions.address ?? '127.0.0.1:7233';
  const namespace = loaded.namespace ?? 'default';
  return { address, namespace, connection: { ...loaded.connectionOptions, address } };
}

/** The task queue workers poll and clients start rounds on. */
export function taskQueue(env: NodeJS.ProcessEnv = process.env): string {
  return env.TAO_TASK_QUEUE || TASK_QUEUE;
}

/** Where installed tools, the venv and the dev server's state live. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.TAO_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'tao');
}

export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  const python = env.TAO_PYTHON ?? path.join(cacheDir(env), 'venv', 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(`TAO_PYTHON: ${python} does not exist; run scripts/setup-python.sh (or set TAO_PYTHON)`);
  }
  return python;
}

/** The jobs package the local executor runs (TAO_JOBS_SRC points at another one; tests use a scripted stand-in). */
export function jobsSrc(env: NodeJS.ProcessEnv = process.env): string {
  return env.TAO_JOBS_SRC ?? JOBS_SRC;
}

/**
 * Version of the stage code that the local executor runs: a hash of the jobs package sources. It is part of
 * every memo key, so editing a stage re-runs it while untouched stages are reused.
 */
export function jobsCodeVersion(src: string = JOBS_SRC): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (name === '__pycache__') continue;
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.(py|json)$/.test(name)) h.update(path.relative(src, full)).update('\0').update(readFileSync(full));
    }
  };
  walk(src);
  return `tao_jobs-src-${h.digest('hex').slice(0, 12)}`;
}

export interface KubernetesEnv {
  stages: KubernetesStageConfig;
  grace: Grace;
  streamLogs: boolean;
}

/** The Kubernetes executor's settings, or undefined when this worker runs no Jobs (no TAO_EXECUTOR_NAMESPACE). */
export function kubernetesEnv(env: NodeJS.ProcessEnv = process.env): KubernetesEnv | undefined {
  if (!env.TAO_EXECUTOR_NAMESPACE) return undefined;
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
  return { stages: stageTemplatesFromEnv(env), grace, streamLogs: streamLogs === 'true' };
}

function json<T>(env: NodeJS.ProcessEnv, name: string, check: (v: unknown) => boolean, what: string): T | undefined {
  const raw = env[name];
  if (!raw) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${name}: not JSON (${(e as Error).message})`);
  }
  if (!check(value)) throw new Error(`${name}: must be ${what}`);
  return value as T;
}

/** A number from the environment (undefined when unset); a value `ok` refuses is an error naming the variable. */
export function envNumber(
  env: NodeJS.ProcessEnv,
  name: string,
  ok: (n: number) => boolean,
  what: string,
): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!ok(n)) throw new Error(`${name}: must be ${what}, got "${raw}"`);
  return n;
}

const int = (env: NodeJS.ProcessEnv, name: string, min: number) =>
  envNumber(env, name, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);

export function stageTemplatesFromEnv(env: NodeJS.ProcessEnv = process.env): KubernetesStageConfig {
  const image = env.TAO_STAGE_IMAGE ?? 'tao-jobs:dev';
  const secret = env.TAO_STAGE_ENV_FROM_SECRET;
  const templates: KubernetesStageConfig['templates'] = {
    default: {
      image,
      serviceAccountName: env.TAO_STAGE_SERVICE_ACCOUNT ?? 'tao-stage',
      envFrom: secret ? [{ secretRef: { name: secret } }] : undefined,
      nodeSelector: json(
        env,
        'TAO_STAGE_NODE_SELECTOR',
        (v) => !!v && typeof v === 'object' && !Array.isArray(v),
        'a JSON object of label: value',
      ),
      tolerations: json(env, 'TAO_STAGE_TOLERATIONS', Array.isArray, 'a JSON array of tolerations'),
      priorityClassName: env.TAO_STAGE_PRIORITY_CLASS,
      backoffLimit: int(env, 'TAO_STAGE_BACKOFF_LIMIT', 0),
      activeDeadlineSeconds: int(env, 'TAO_STAGE_ACTIVE_DEADLINE_SECONDS', 1),
      ttlSecondsAfterFinished: int(env, 'TAO_STAGE_TTL_SECONDS', 0),
      maxRestarts: int(env, 'TAO_STAGE_MAX_RESTARTS', 0),
      rendezvousTimeoutSeconds: int(env, 'TAO_STAGE_RENDEZVOUS_TIMEOUT_SECONDS', 1),
      clusterDomain: env.TAO_STAGE_CLUSTER_DOMAIN || undefined,
    },
  };
  for (const stage of STAGES) {
    const own = env[`TAO_STAGE_IMAGE_${stage.toUpperCase()}`];
    if (own) templates[stage] = { image: own };
  }
  return { namespace: env.TAO_EXECUTOR_NAMESPACE ?? 'tao', templates };
}
