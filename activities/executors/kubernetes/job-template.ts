/**
 * Builds the batch/v1 Job of one stage (or shard) from a per-stage template: the container contract
 * (`python -m tao_jobs <stage> --spec <uri>`), resources with `nvidia.com/gpu` limits, scheduling
 * constraints, the retry layer Kubernetes owns (backoffLimit + podFailurePolicy), backstops
 * (activeDeadlineSeconds, ttlSecondsAfterFinished), and labels/annotations that identify the round.
 * Pure: no API calls, so it is table-tested and used by `tao render`.
 *
 * Multi-node training (`resources.nodes` > 1, train only; docs/design.md#rule-14) is still ONE Job: an Indexed Job
 * whose pods run torchrun and meet through a headless Service (`buildService`), see `buildJob` below and
 * docs/multi-node-training.md.
 *
 * Credentials never appear as values: the template can only reference Secrets (env valueFrom / envFrom)
 * and service accounts.
 */
import type {
  V1Affinity,
  V1EnvFromSource,
  V1EnvVar,
  V1Job,
  V1JobSpec,
  V1Service,
  V1Toleration,
} from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { JobStage } from '../../../common/run-spec.js';
import type { StageJob } from '../executor.js';

export const CONTAINER = 'stage';
export const LABEL_DOMAIN = 'tao.dev';
export const MANAGED_BY = 'tao-worker';
/** Selects every stage Job (and pod) a TAO worker created: what the executor watches and the reaper lists. */
export const MANAGED_BY_SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;
export const WORKFLOW_ID_ANNOTATION = `${LABEL_DOMAIN}/workflow-id`;
/**
 * The stage's memo key, in full (the `spec-hash` label holds at most 63 characters of it). Adoption checks it:
 * a Job is the same work only when its key is the stage's key (kubernetes-executor.ts, `sameWork`).
 */
export const KEY_ANNOTATION = `${LABEL_DOMAIN}/key`;
/** The run that created the Job, or the latest run that adopted it. */
export const RUN_ID_ANNOTATION = `${LABEL_DOMAIN}/run-id`;
/** Where the creating (or latest adopting) run writes the pod logs. */
export const LOG_URI_ANNOTATION = `${LABEL_DOMAIN}/log-uri`;
/** torchrun's c10d rendezvous store, hosted by the pod of completion index 0. */
export const RENDEZVOUS_PORT = 29500;

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
  /** Multi-node train: worker-group restarts torchrun does in place before its pod fails (default 3). */
  maxRestarts?: number;
  /** Multi-node train: how long torchrun waits for every node to join the rendezvous (default 1800 s). */
  rendezvousTimeoutSeconds?: number;
  /** The cluster's DNS domain (kubelet `clusterDomain`), for the rendezvous host's FQDN (default cluster.local). */
  clusterDomain?: string;
}

/** Per-stage templates: a default and optional per-stage overrides. */
export type StageTemplates = { default: StageTemplate } & Partial<Record<JobStage, Partial<StageTemplate>>>;

/** Where and how the Kubernetes executor runs stage Jobs (the worker builds it from its environment). */
export interface KubernetesStageConfig {
  namespace: string;
  templates: StageTemplates;
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

/** Pods of the stage: `resources.nodes`, 1 when unset. */
export function nodesOf(job: StageJob): number {
  return job.resources.nodes ?? 1;
}

function identityOf(job: StageJob, id: JobIdentity) {
  const labels: Record<string, string> = {
    'app.kubernetes.io/name': 'tao-stage',
    'app.kubernetes.io/component': job.stage,
    'app.kubernetes.io/part-of': 'tao',
    'app.kubernetes.io/managed-by': MANAGED_BY,
    [`${LABEL_DOMAIN}/workflow`]: labelValue(id.workflowId),
    [`${LABEL_DOMAIN}/round`]: String(id.round),
    [`${LABEL_DOMAIN}/stage`]: job.stage,
    [`${LABEL_DOMAIN}/shard`]: job.shard === null ? 'none' : String(job.shard),
    [`${LABEL_DOMAIN}/spec-hash`]: labelValue(id.key),
    // `kubectl get jobs -l tao.dev/arm` tells a baseline arm's Jobs from TAO's own (same stages, other keys)
    ...(job.arm ? { [`${LABEL_DOMAIN}/arm`]: job.arm } : {}),
  };
  const annotations = {
    [WORKFLOW_ID_ANNOTATION]: id.workflowId,
    [RUN_ID_ANNOTATION]: id.runId,
    [KEY_ANNOTATION]: id.key,
    [`${LABEL_DOMAIN}/spec-uri`]: job.specUri,
    [LOG_URI_ANNOTATION]: job.logUri,
  };
  return { labels, annotations };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The checks of a multi-node Job, before anything reaches the apiserver.
 *
 * Name lengths: the Job name, the Service name (= the Job name) and each pod's hostname `<job>-<index>` are
 * DNS labels of at most 63 characters. The job controller sets the hostnames itself and the apiserver
 * refuses an Indexed Job whose `<name>-<completions - 1>` is not a valid label (batch validation:
 * "will not able to create pod with invalid DNS label"), so the name must leave room for "-" and the
 * digits of the last index: ≤ 61 characters for 2-10 nodes, ≤ 60 for 11-100. `jobName()` keeps names to 60
 * characters for this; a name from elsewhere that is too long is refused here with the reason rather than as
 * a 422 from the apiserver. A Service name is also a DNS-1035 label (starts
 * with a letter); `jobName()` names start with "tao-".
 */
function checkMultiNode(job: StageJob, nodes: number): void {
  if (job.stage !== 'train') {
    throw new TemplateError(`${job.stage}: resources.nodes is ${nodes}; only train runs on more than one node`);
  }
  const lastHost = `${job.name}-${nodes - 1}`;
  if (lastHost.length > 63 || !DNS1123_LABEL.test(lastHost)) {
    throw new TemplateError(
      `Job name ${job.name} (${job.name.length} characters) is too long for ${nodes} nodes: the pod hostname ` +
        `${lastHost} must be a DNS label of at most 63 characters`,
    );
  }
  if (!DNS1035_LABEL.test(job.name)) {
    throw new TemplateError(`Job name ${job.name} cannot name the rendezvous Service (DNS-1035 label)`);
  }
}

/** The headless Service of a multi-node Job has the Job's name (one Service per Job, deleted with it). */
export function serviceName(job: StageJob): string {
  return job.name;
}

/**
 * The container's command, args and launcher env. One node: the container contract, `python -m tao_jobs
 * <stage> --spec <uri>`. Several nodes: the same module under torchrun (`python -m tao_jobs.torchrun`, which
 * is torchrun keeping the workers' exit 64/65; flags as in torch 2.15's `--help`), one torchrun agent per pod
 * starting `--nproc-per-node` workers (one per GPU, 1 on CPU):
 *
 * - Rendezvous `c10d` at `<job>-0.<service>.<namespace>.svc.<clusterDomain>:29500`. Whichever agent finds that
 *   name to be its own hosts the store: the kubelet writes exactly this FQDN as the first name of the pod's
 *   own line in /etc/hosts (hostname + subdomain), so pod 0 recognises itself without waiting for DNS; the
 *   other pods resolve it through the headless Service (`publishNotReadyAddresses`, so before pod 0 is
 *   Ready), retrying until the join timeout. The short `<job>-0.<service>` would also resolve (search path),
 *   but pod 0 could then only recognise itself through DNS, a race with the Service's endpoints at start.
 * - No `--node-rank`: torchrun ignores it for c10d (it warns so). The rendezvous ranks the agents by their
 *   FQDN, sorted, so pod 0 (`<job>-0.…` sorts first) gets group rank 0 and global rank 0: the rank that
 *   reports progress and writes outputs (tao_jobs) runs in pod 0.
 * - `--nnodes=N` (not a range): the gang waits for all N pods and never shrinks. `--rdzv-conf=join_timeout`
 *   (default 1800 s) covers pods waiting for GPUs: there is no gang scheduling without e.g. Kueue.
 * - `--rdzv-id=<job name>`: every pod of this Job, including replacements, joins the same rendezvous; a new
 *   generation of the Job has another name, hence a fresh rendezvous.
 * - `--max-restarts=k`: gang restarts in place, see `buildJob`.
 * - env TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: by default torch 2.x lets the workers' process group reuse the
 *   rendezvous store, keyed by TORCHELASTIC_RESTART_COUNT, which each agent counts for itself (a node that
 *   restarts because another failed does not count it); after a gang restart the nodes then disagree and
 *   the new process group hangs or fails (pytorch/pytorch#135712). Measured with this torch (2.15), two
 *   agents on one machine, one failing once: with sharing the restarted gang recovered in 1 of 5 runs,
 *   without it in 5 of 5. Each rendezvous round then gets a fresh store on rank 0.
 */
export function stageCommand(
  job: StageJob,
  id: JobIdentity,
  t: StageTemplate,
): { command: string[]; args: string[]; env: V1EnvVar[] } {
  const contract = [job.stage, '--spec', job.specUri];
  const nodes = nodesOf(job);
  if (nodes === 1) return { command: ['python', '-m', 'tao_jobs'], args: contract, env: [] };
  const gpu = job.resources.gpu ?? t.gpu ?? 0;
  const host = `${job.name}-0.${serviceName(job)}.${id.namespace}.svc.${t.clusterDomain ?? 'cluster.local'}`;
  return {
    // torchrun itself, run by a launcher that keeps the workers' exit 64/65 (torchrun alone exits 1)
    command: ['python', '-m', 'tao_jobs.torchrun'],
    args: [
      `--nnodes=${nodes}`,
      `--nproc-per-node=${gpu > 0 ? gpu : 1}`,
      '--rdzv-backend=c10d',
      `--rdzv-endpoint=${host}:${RENDEZVOUS_PORT}`,
      `--rdzv-id=${job.name}`,
      `--rdzv-conf=join_timeout=${t.rendezvousTimeoutSeconds ?? 1800}`,
      `--max-restarts=${t.maxRestarts ?? 3}`,
      '-m',
      'tao_jobs',
      ...contract,
    ],
    env: [{ name: 'TORCH_DISABLE_SHARE_RDZV_TCP_STORE', value: '1' }],
  };
}

/**
 * The Job of one stage (or shard). With `resources.nodes` = N > 1 (train only) it is an Indexed Job:
 * completions = parallelism = N, pod hostnames `<job>-<index>` (set by the job controller) under the
 * headless Service's subdomain, env JOB_COMPLETION_INDEX, and the container runs torchrun (`stageCommand`).
 *
 * Gang restarts belong to this object, in two layers, plus a success rule:
 * 1. In place, by torchrun: when a worker process fails (crash, NCCL error), its agent stops the local
 *    workers and re-rendezvouses; the other agents see a node waiting and restart theirs too, so the whole
 *    gang runs the entry point again (same pods, same GPUs, no rescheduling; the trainer resumes from its
 *    newest uploaded checkpoint), up to `maxRestarts` times per agent. Then torchrun exits 1 and its pod
 *    fails.
 * 2. By the Job: a failed pod is replaced under the same index and hostname and joins the same rendezvous
 *    (`--rdzv-id` = Job name); if pod 0 (the store host) failed, the others lose the store, fail too, and
 *    the whole gang comes back as new pods. `backoffLimit` counts failed pods across all indexes, so it is
 *    the template's per-pod budget (default 2) times N: as many whole-gang restarts as a single-node Job
 *    has retries. The podFailurePolicy is unchanged: DisruptionTarget (eviction, preemption) is ignored,
 *    exit 64/65 fails the Job at once. torchrun alone exits 1 whatever its workers' exit codes; the launcher
 *    `tao_jobs.torchrun` passes a worker's 64/65 on (after torchrun's own restarts), so this rule applies.
 * 3. `successPolicy` (succeededIndexes "0"): the Job succeeds when pod 0, home of rank 0 (which writes the
 *    outputs and the manifest after torchrun's exit barrier), succeeds; straggling pods are then stopped
 *    instead of being retried into a rendezvous nobody else joins.
 *
 * Temporal sees one activity and one Job either way; it retries only when the Job as a whole has failed.
 */
export function buildJob(job: StageJob, id: JobIdentity, t: StageTemplate): V1Job {
  for (const e of t.env ?? []) {
    if (e.value !== undefined && SECRETISH.test(e.name)) {
      throw new TemplateError(
        `env ${e.name}: looks like a credential; reference a Secret (valueFrom.secretKeyRef) instead of a value`,
      );
    }
  }
  const nodes = nodesOf(job);
  if (!Number.isInteger(nodes) || nodes < 1) throw new TemplateError(`resources.nodes must be an integer ≥ 1`);
  if (nodes > 1) checkMultiNode(job, nodes);
  const gpu = job.resources.gpu ?? t.gpu ?? 0;
  const cpu = job.resources.cpu ?? t.cpu;
  const memory = job.resources.memory ?? t.memory;
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (cpu) requests.cpu = cpu;
  if (memory) requests.memory = limits.memory = memory;
  if (gpu > 0) requests['nvidia.com/gpu'] = limits['nvidia.com/gpu'] = String(gpu);

  const { labels, annotations } = identityOf(job, id);
  const launch = stageCommand(job, id, t);
  const indexed: Partial<V1JobSpec> =
    nodes > 1
      ? {
          completionMode: 'Indexed',
          completions: nodes,
          parallelism: nodes,
          successPolicy: { rules: [{ succeededIndexes: '0' }] },
        }
      : {};
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: job.name, namespace: id.namespace, labels, annotations },
    spec: {
      ...indexed,
      backoffLimit: (t.backoffLimit ?? 2) * nodes,
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
          subdomain: nodes > 1 ? serviceName(job) : undefined,
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
              command: launch.command,
              args: launch.args,
              ports: nodes > 1 ? [{ name: 'rendezvous', containerPort: RENDEZVOUS_PORT }] : undefined,
              env: [
                ...(t.env ?? []),
                ...Object.entries(job.env ?? {}).map(([name, value]) => ({ name, value })),
                { name: 'TAO_JOB_NAME', value: job.name },
                ...launch.env,
              ],
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

/**
 * The headless Service of a multi-node Job (null for one node): it gives the Job's pods the DNS names
 * `<job>-<index>.<service>` torchrun meets at. No cluster IP, no ports (DNS only), selecting the Job's pods by
 * the label the job controller puts on them, and publishing them before they are Ready (a training pod
 * never declares readiness; the rendezvous happens at start). Name and labels are the Job's.
 */
export function buildService(job: StageJob, id: JobIdentity, _template: StageTemplate): V1Service | null {
  // (nothing in the template concerns the Service; the parameter keeps buildJob's signature)
  const nodes = nodesOf(job);
  if (nodes <= 1) return null;
  checkMultiNode(job, nodes);
  const { labels, annotations } = identityOf(job, id);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(job), namespace: id.namespace, labels, annotations },
    spec: {
      clusterIP: 'None',
      selector: { 'batch.kubernetes.io/job-name': job.name },
      publishNotReadyAddresses: true,
    },
  };
}

/**
 * The Service made a dependent of the created Job (which has a uid): deleting the Job, with Background or
 * Foreground propagation, makes the garbage collector delete the Service too, so the executor's and the
 * reaper's cleanup (delete the Job) stays one call. Not `controller` (the Job does not manage the Service) and
 * not `blockOwnerDeletion` (that would need update on jobs/finalizers where OwnerReferencesPermissionEnforcement
 * is on).
 */
export function withOwner(service: V1Service, job: V1Job): V1Service {
  const uid = job.metadata?.uid;
  const name = job.metadata?.name;
  if (!uid || !name) throw new TemplateError('withOwner: the Job has no uid yet; pass the Job the apiserver returned');
  if (job.metadata?.namespace !== service.metadata?.namespace) {
    throw new TemplateError(
      `withOwner: the Job is in namespace ${job.metadata?.namespace}, the Service in ${service.metadata?.namespace}`,
    );
  }
  return {
    ...service,
    metadata: {
      ...service.metadata,
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name, uid }],
    },
  };
}

/** The template for a stage: its own entry, else the default. */
export function templateFor(templates: StageTemplates, stage: JobStage): StageTemplate {
  return { ...templates.default, ...templates[stage] };
}
