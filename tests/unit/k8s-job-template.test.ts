import { describe, expect, it } from 'vitest';
import { jobName } from '../../activities/job-name.js';
import {
  buildJob,
  labelValue,
  templateFor,
  TemplateError,
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
