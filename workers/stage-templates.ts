/**
 * Stage Job templates for the Kubernetes executor, from the worker's environment (the kustomize overlays set
 * these through the tao-worker-config ConfigMap). Validated once at start-up; a bad value names the variable.
 *
 *   TAO_EXECUTOR_NAMESPACE        namespace of the stage Jobs (default: tao)
 *   TAO_STAGE_IMAGE               image for every stage; TAO_STAGE_IMAGE_<STAGE> overrides one stage
 *   TAO_STAGE_SERVICE_ACCOUNT     service account of the stage pods (default: tao-stage)
 *   TAO_STAGE_ENV_FROM_SECRET     a Secret whose keys become the pods' environment (artifact-store credentials)
 *   TAO_STAGE_NODE_SELECTOR       JSON object;  TAO_STAGE_TOLERATIONS  JSON array
 *   TAO_STAGE_PRIORITY_CLASS      priorityClassName of the stage pods
 *   TAO_STAGE_BACKOFF_LIMIT, TAO_STAGE_ACTIVE_DEADLINE_SECONDS, TAO_STAGE_TTL_SECONDS   Job retry and backstops
 *   TAO_STAGE_MAX_RESTARTS, TAO_STAGE_RENDEZVOUS_TIMEOUT_SECONDS, TAO_STAGE_CLUSTER_DOMAIN   multi-node train
 */
import { STAGES } from '../common/run-spec.js';
import type { KubernetesStageConfig } from '../activities/executors/kubernetes/job-template.js';

export type { KubernetesStageConfig };

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
