import { describe, expect, it } from 'vitest';
import { jobName } from '../../activities/job-name.js';
import type { V1Job } from '@kubernetes/client-node';
import {
  buildJob,
  buildService,
  labelValue,
  stageCommand,
  templateFor,
  TemplateError,
  withOwner,
} from '../../activities/executors/kubernetes/job-template.js';
import type { StageJob } from '../../activities/executors/executor.js';

const job = (over: Partial<StageJob> = {}): StageJob => ({
  name: jobName({ workflowId: 'tao/support-bot/round-12', round: 12, stage: 'train', shard: null, generation: 0 }),
  stage: 'train',
  shard: null,
  specUri: 's3://tao/runs/stages/train/abc/stage-spec.json',
  logUri: 's3://tao/runs/stages/train/abc/logs/attempt-1.log',
  resources: {},
  labels: {},
  ...over,
});
const id = { namespace: 'tao', workflowId: 'tao/support-bot/round-12', runId: '01a2-run', round: 12, key: 'abc123' };
const templates = {
  default: {
    image: 'registry.example/tao-train:0.1.0',
    serviceAccountName: 'tao-stage',
    envFrom: [{ secretRef: { name: 'tao-artifacts-s3' } }],
    nodeSelector: { 'tao.dev/gpu-node': 'true' },
    tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    gpu: 1,
  },
  train: { gpu: 8, memory: '512Gi', priorityClassName: 'tao-training' },
};

describe('Kubernetes Job template', () => {
  it('runs the container contract with GPU limits, scheduling constraints and the Kubernetes retry layer', () => {
    const j = buildJob(job(), id, templateFor(templates, 'train'));
    const spec = j.spec!;
    const c = spec.template.spec!.containers[0]!;
    expect(c.command).toEqual(['python', '-m', 'tao_jobs']);
    expect(c.args).toEqual(['train', '--spec', 's3://tao/runs/stages/train/abc/stage-spec.json']);
    expect(c.resources).toEqual({
      requests: { memory: '512Gi', 'nvidia.com/gpu': '8' },
      limits: { memory: '512Gi', 'nvidia.com/gpu': '8' },
    });
    expect(c.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(spec.template.spec).toMatchObject({
      restartPolicy: 'Never',
      serviceAccountName: 'tao-stage',
      priorityClassName: 'tao-training',
      nodeSelector: { 'tao.dev/gpu-node': 'true' },
    });
    expect(spec.podFailurePolicy!.rules).toEqual([
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
      { action: 'FailJob', onExitCodes: { containerName: 'stage', operator: 'In', values: [64, 65] } },
    ]);
    expect(spec).toMatchObject({ backoffLimit: 2, activeDeadlineSeconds: 86400, ttlSecondsAfterFinished: 259200 });
  });

  it('identifies the round in labels (valid label values) and annotations (full ids)', () => {
    const j = buildJob(job({ stage: 'generate', shard: 3 }), id, templateFor(templates, 'generate'));
    expect(j.metadata!.name!.length).toBeLessThanOrEqual(63);
    for (const v of Object.values(j.metadata!.labels!))
      expect(v).toMatch(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/);
    expect(j.metadata!.labels).toMatchObject({
      'tao.dev/stage': 'generate',
      'tao.dev/shard': '3',
      'tao.dev/round': '12',
      'app.kubernetes.io/managed-by': 'tao-worker',
    });
    expect(j.metadata!.annotations).toMatchObject({
      'tao.dev/workflow-id': 'tao/support-bot/round-12',
      'tao.dev/run-id': '01a2-run',
    });
    expect(j.spec!.template.spec!.containers[0]!.resources!.limits).toEqual({ 'nvidia.com/gpu': '1' });
  });

  it('never carries credential values: only references to Secrets', () => {
    expect(() => buildJob(job(), id, { image: 'x', env: [{ name: 'AWS_SECRET_ACCESS_KEY', value: 'oops' }] })).toThrow(
      TemplateError,
    );
    const ok = buildJob(job(), id, {
      image: 'x',
      env: [{ name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 's3', key: 'secret' } } }],
    });
    expect(JSON.stringify(ok)).not.toContain('oops');
  });

  it('label values are shortened with a hash when too long', () => {
    const long = 'tao/' + 'x'.repeat(100);
    expect(labelValue(long).length).toBeLessThanOrEqual(63);
    expect(labelValue(long)).not.toBe(labelValue(long + 'y'));
  });
});

describe('multi-node training: one Indexed Job and its headless Service', () => {
  const train = (nodes: number, over: Partial<StageJob> = {}) => job({ resources: { gpu: 8, nodes }, ...over });
  const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

  it('is an Indexed Job of N pods under the Service subdomain, running the contract under torchrun', () => {
    const j = buildJob(train(4), id, templateFor(templates, 'train'));
    const name = j.metadata!.name!;
    const spec = j.spec!;
    expect(spec).toMatchObject({
      completionMode: 'Indexed',
      completions: 4,
      parallelism: 4,
      successPolicy: { rules: [{ succeededIndexes: '0' }] },
      backoffLimit: 8, // the default 2 retries per pod, times 4 pods: two whole-gang restarts
    });
    const pod = spec.template.spec!;
    expect(pod.subdomain).toBe(name);
    expect(pod.restartPolicy).toBe('Never');
    const c = pod.containers[0]!;
    expect(c.command).toEqual(['python', '-m', 'tao_jobs.torchrun']);
    expect(c.args).toEqual([
      '--nnodes=4',
      '--nproc-per-node=8',
      '--rdzv-backend=c10d',
      `--rdzv-endpoint=${name}-0.${name}.tao.svc.cluster.local:29500`,
      `--rdzv-id=${name}`,
      '--rdzv-conf=join_timeout=1800',
      '--max-restarts=3',
      '-m',
      'tao_jobs',
      'train',
      '--spec',
      's3://tao/runs/stages/train/abc/stage-spec.json',
    ]);
    expect(c.args).not.toContainEqual(expect.stringMatching(/^--node-rank/)); // ignored by c10d
    expect(c.env).toContainEqual({ name: 'TORCH_DISABLE_SHARE_RDZV_TCP_STORE', value: '1' });
    expect(c.env).toContainEqual({ name: 'TAO_JOB_NAME', value: name });
    expect(c.ports).toEqual([{ name: 'rendezvous', containerPort: 29500 }]);
    // GPUs are per pod (node); the retry layer is unchanged
    expect(c.resources!.limits).toEqual({ memory: '512Gi', 'nvidia.com/gpu': '8' });
    expect(spec.podFailurePolicy!.rules).toEqual([
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
      { action: 'FailJob', onExitCodes: { containerName: 'stage', operator: 'In', values: [64, 65] } },
    ]);
  });

  it('one process per pod on CPU; the template sets restarts, join timeout, cluster domain and the per-pod budget', () => {
    const t = {
      image: 'x',
      maxRestarts: 1,
      rendezvousTimeoutSeconds: 600,
      clusterDomain: 'corp.internal',
      backoffLimit: 1,
    };
    const j = buildJob(job({ resources: { nodes: 3 } }), { ...id, namespace: 'ml' }, t);
    const name = j.metadata!.name!;
    expect(j.spec!.backoffLimit).toBe(3);
    expect(j.spec!.template.spec!.containers[0]!.args).toEqual(
      expect.arrayContaining([
        '--nnodes=3',
        '--nproc-per-node=1',
        `--rdzv-endpoint=${name}-0.${name}.ml.svc.corp.internal:29500`,
        '--rdzv-conf=join_timeout=600',
        '--max-restarts=1',
      ]),
    );
    expect(j.spec!.template.spec!.containers[0]!.resources).toEqual({ requests: {}, limits: {} });
  });

  it('one node (unset or 1) is the plain Job of before, without a Service', () => {
    const t = templateFor(templates, 'train');
    const plain = buildJob(job(), id, t);
    expect(buildJob(job({ resources: { nodes: 1 } }), id, t)).toEqual(plain);
    expect(plain.spec!.completionMode).toBeUndefined();
    expect(plain.spec!.successPolicy).toBeUndefined();
    expect(plain.spec!.template.spec!.subdomain).toBeUndefined();
    expect(plain.spec!.template.spec!.containers[0]!.ports).toBeUndefined();
    expect(stageCommand(job(), id, t)).toEqual({
      command: ['python', '-m', 'tao_jobs'],
      args: ['train', '--spec', 's3://tao/runs/stages/train/abc/stage-spec.json'],
      env: [],
    });
    expect(buildService(job(), id, t)).toBeNull();
    expect(buildService(job({ resources: { nodes: 1 } }), id, t)).toBeNull();
  });

  it('the headless Service: no cluster IP, the Job pods by job-name, published before Ready, the Job identity', () => {
    const t = templateFor(templates, 'train');
    const j = buildJob(train(2), id, t);
    const s = buildService(train(2), id, t)!;
    expect(s).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: j.metadata!.name,
        namespace: 'tao',
        labels: j.metadata!.labels,
        annotations: j.metadata!.annotations,
      },
      spec: {
        clusterIP: 'None',
        selector: { 'batch.kubernetes.io/job-name': j.metadata!.name },
        publishNotReadyAddresses: true,
      },
    });
    expect(s.metadata!.name).toMatch(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/); // DNS-1035: Service names
  });

  it('every pod hostname <job>-<index> stays a DNS label of ≤ 63 characters, or the Job is refused', () => {
    const t = { image: 'x' };
    const named = (length: number, nodes: number) =>
      train(nodes, { name: `tao-${'a'.repeat(length - 15)}-${'0123456789'}` });
    expect(named(61, 2).name).toHaveLength(61);
    for (const [length, nodes] of [
      [61, 2],
      [61, 10],
      [60, 11],
      [60, 100],
      [59, 1000],
    ] as const) {
      const j = buildJob(named(length, nodes), id, t);
      for (const i of [0, nodes - 1]) expect(`${j.metadata!.name}-${i}`).toMatch(DNS_LABEL);
      expect(buildService(named(length, nodes), id, t)!.metadata!.name).toBe(j.metadata!.name);
    }
    for (const [length, nodes] of [
      [62, 2],
      [61, 11],
      [60, 101],
    ] as const) {
      expect(() => buildJob(named(length, nodes), id, t)).toThrow(/must be a DNS label of at most 63 characters/);
      expect(() => buildService(named(length, nodes), id, t)).toThrow(TemplateError);
    }
    // a 63-character name from elsewhere: fine for one node, refused for several
    const long = `tao-${'x'.repeat(59)}`;
    expect(() => buildJob(job({ name: long }), id, t)).not.toThrow();
    expect(() => buildJob(job({ name: long, resources: { nodes: 2 } }), id, t)).toThrow(
      `Job name ${long} (63 characters) is too long for 2 nodes`,
    );
    // jobName() keeps to 60 characters even for a very long workflow id: room for 100 nodes
    const longest = jobName({
      workflowId: `tao/${'x'.repeat(60)}/round-1`,
      round: 1,
      stage: 'train',
      shard: null,
      generation: 0,
    });
    expect(longest).toHaveLength(60);
    expect(() => buildJob(job({ name: longest, resources: { nodes: 100 } }), id, t)).not.toThrow();
    // the default ids of a 1-40 character run name leave room for at least 100 nodes
    const usual = jobName({
      workflowId: 'tao/support-bot/round-12',
      round: 12,
      stage: 'train',
      shard: null,
      generation: 0,
    });
    expect(() => buildJob(job({ name: usual, resources: { nodes: 100 } }), id, t)).not.toThrow();
  });

  it('only train runs on several nodes, and nodes is a positive integer', () => {
    expect(() => buildJob(job({ stage: 'generate', shard: 0, resources: { nodes: 2 } }), id, { image: 'x' })).toThrow(
      'generate: resources.nodes is 2; only train runs on more than one node',
    );
    for (const nodes of [0, 1.5, -1]) {
      expect(() => buildJob(job({ resources: { nodes } }), id, { image: 'x' })).toThrow(TemplateError);
    }
  });

  it('withOwner makes the Service a dependent of the created Job, so deleting the Job deletes it', () => {
    const t = templateFor(templates, 'train');
    const service = buildService(train(2), id, t)!;
    const created: V1Job = { ...buildJob(train(2), id, t), metadata: { name: 'tao-j', namespace: 'tao', uid: 'u-1' } };
    const owned = withOwner(service, created);
    expect(owned.metadata!.ownerReferences).toEqual([
      { apiVersion: 'batch/v1', kind: 'Job', name: 'tao-j', uid: 'u-1' },
    ]);
    expect(owned.spec).toEqual(service.spec);
    expect(service.metadata!.ownerReferences).toBeUndefined(); // the input is not modified
    expect(() => withOwner(service, buildJob(train(2), id, t))).toThrow('the Job has no uid yet');
    expect(() => withOwner(service, { metadata: { name: 'tao-j', namespace: 'other', uid: 'u-1' } })).toThrow(
      'the Job is in namespace other, the Service in tao',
    );
  });
});
