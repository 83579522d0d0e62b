/**
 * Builds the batch/v1 Job of one stage (or shard) from a per-stage template: the container contract
 * (`python -m tao_jobs <stage> --spec <uri>`), resources with `nvidia.com/gpu` limits, scheduling
 * constraints, the retry layer Kubernetes owns (backoffLimit + podFailurePolicy), backstops
 * (activeDeadlineSeconds, ttlSecondsAfterFinished), and labels/annotations that identify the round.
 * Pure: no API calls, so it is table-tested and used by `tao render`.
 *
 * Credentials never appear as values: the template can only reference Secrets (env valueFrom / envFrom)
 * and service accounts.
 */
import type { V1Affinity, V1EnvFromSource, V1EnvVar, V1Job, V1Toleration } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { JobStage } from '../../../common/run-spec.js';
import type { StageJob } from '../executor.js';

export const CONTAINER = 'stage';
export const LABEL_DOMAIN = 'tao.dev';

export interface StageTemplate {
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  serviceAccountName?: string;
  /** Plain settings, or values from Secrets (`valueFrom.secretKeyRef`); literal secret values are refused. */
  env?: V1EnvVar[];
  envFrom?: V1EnvFromSource[];
  cpu?: string;
  memory?: string;
  gpu?: number;
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  affinity?: V1Affinity;
  priorityClassName?: string;
  activeDeadlineSeconds?: number;
  /** Pod restarts Kubernetes may do for crashes (disruptions do not count, exit 64/65 fail at once). */
  backoffLimit?: number;
  /** Long enough to debug a failure; the reaper deletes Jobs of closed rounds earlier. */
  ttlSecondsAfterFinished?: number;
  /** Extra pod labels and annotations (e.g. for a service mesh, cost allocation, or a test harness). */
  podLabels?: Record<string, string>;
  podAnnotations?: Record<string, string>;
}

export interface JobIdentity {
  namespace: string;
  workflowId: string;
  runId: string;
  round: number;
  /** The stage's memo key (content hash of spec, inputs and code). */
  key: string;
}

const SECRETISH = /(SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY)/i;

/** Label values: ≤ 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric. */
export function labelValue(text: string): string {
  const clean = text.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (clean.length <= 63) return clean;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 10);
  return `${clean.slice(0, 52).replace(/[^A-Za-z0-9]+$/, '')}-${hash}`;
}

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

export function buildJob(job: StageJob, id: JobIdentity, t: StageTemplate): V1Job {
  for (const e of t.env ?? []) {
    if (e.value !== undefined && SECRETISH.test(e.name)) {
      throw new TemplateError(
        `env ${e.name}: looks like a credential; reference a Secret (valueFrom.secretKeyRef) instead of a value`,
      );
    }
  }
  const gpu = job.resources.gpu ?? t.gpu ?? 0;
  const cpu = job.resources.cpu ?? t.cpu;
  const memory = job.resources.memory ?? t.memory;
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (cpu) requests.cpu = cpu;
  if (memory) requests.memory = limits.memory = memory;
  if (gpu > 0) requests['nvidia.com/gpu'] = limits['nvidia.com/gpu'] = String(gpu);

  const labels: Record<string, string> = {
    'app.kubernetes.io/name': 'tao-stage',
    'app.kubernetes.io/component': job.stage,
    'app.kubernetes.io/part-of': 'tao',
    'app.kubernetes.io/managed-by': 'tao-worker',
    [`${LABEL_DOMAIN}/workflow`]: labelValue(id.workflowId),
    [`${LABEL_DOMAIN}/round`]: String(id.round),
    [`${LABEL_DOMAIN}/stage`]: job.stage,
    [`${LABEL_DOMAIN}/shard`]: job.shard === null ? 'none' : String(job.shard),
    [`${LABEL_DOMAIN}/spec-hash`]: labelValue(id.key),
  };
  const annotations = {
    [`${LABEL_DOMAIN}/workflow-id`]: id.workflowId,
    [`${LABEL_DOMAIN}/run-id`]: id.runId,
    [`${LABEL_DOMAIN}/spec-uri`]: job.specUri,
    [`${LABEL_DOMAIN}/log-uri`]: job.logUri,
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: job.name, namespace: id.namespace, labels, annotations },
    spec: {
      backoffLimit: t.backoffLimit ?? 2,
      activeDeadlineSeconds: t.activeDeadlineSeconds ?? 24 * 3600,
      ttlSecondsAfterFinished: t.ttlSecondsAfterFinished ?? 3 * 24 * 3600,
      podFailurePolicy: {
        rules: [
          // evictions and preemptions are not the job's fault: retry without counting against backoffLimit
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          // the contract's "do not retry": invalid stage spec (64), missing or corrupt input (65)
          { action: 'FailJob', onExitCodes: { containerName: CONTAINER, operator: 'In', values: [64, 65] } },
        ],
      },
      template: {
        metadata: { labels: { ...t.podLabels, ...labels }, annotations: { ...t.podAnnotations, ...annotations } },
        spec: {
          restartPolicy: 'Never', // required by podFailurePolicy; Kubernetes' retries are new pods
          serviceAccountName: t.serviceAccountName,
          priorityClassName: t.priorityClassName,
          nodeSelector: t.nodeSelector,
          tolerations: t.tolerations,
          affinity: t.affinity,
          containers: [
            {
              name: CONTAINER,
              image: t.image,
              imagePullPolicy: t.imagePullPolicy,
              command: ['python', '-m', 'tao_jobs'],
              args: [job.stage, '--spec', job.specUri],
              env: [...(t.env ?? []), { name: 'TAO_JOB_NAME', value: job.name }],
              envFrom: t.envFrom,
              resources: { requests, limits },
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'FallbackToLogsOnError',
            },
          ],
        },
      },
    },
  };
}

/** The template for a stage: its own entry, else the default. */
export function templateFor(
  templates: { default: StageTemplate } & Partial<Record<JobStage, Partial<StageTemplate>>>,
  stage: JobStage,
): StageTemplate {
  return { ...templates.default, ...templates[stage] };
}
