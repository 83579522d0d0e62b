/** Job/pod status classification on fixtures named for the behaviour (tests/fixtures/k8s/). */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classify } from '../../activities/executors/kubernetes/classify.js';

function fixture(name: string): { job: V1Job; pods: V1Pod[] } {
  const raw = JSON.parse(readFileSync(`tests/fixtures/k8s/${name}.json`, 'utf8'), (k, v) =>
    k === 'creationTimestamp' ? new Date(v as string) : v,
  ) as { job: V1Job; pods: V1Pod[] };
  return raw;
}

const grace = { pendingMs: 5 * 60_000, pendingTimeoutMs: 60 * 60_000, imagePullMs: 2 * 60_000 };
const created = new Date('2026-11-24T10:00:00Z');
const at = (minutes: number) => new Date(created.getTime() + minutes * 60_000);

describe('classify Job and pod status', () => {
  it.each([
    ['job-complete', 1, { phase: 'succeeded' }],
    ['job-oom-killed', 1, { phase: 'failed', type: 'StageOutOfMemory', retryable: false }],
    [
      'job-invalid-spec-exit-64',
      1,
      {
        phase: 'failed',
        type: 'InvalidStageSpec',
        retryable: false,
        reason: 'invalid stage spec: params.maxTokens: must be >= 1',
      },
    ],
    [
      'job-bad-input-exit-65',
      1,
      { phase: 'failed', type: 'ArtifactMissing', retryable: false, reason: 'bad input: prompts.jsonl:3: not JSON' },
    ],
    ['job-crash-backoff-exceeded', 1, { phase: 'failed', type: 'StageFailed', retryable: true }],
    ['job-deadline-exceeded', 1, { phase: 'failed', type: 'StageDeadlineExceeded', retryable: false }],
    ['pod-evicted', 1, { phase: 'failed', type: 'StageFailed', retryable: true }],
    ['pod-running', 1, { phase: 'running', pods: '1 Running' }],
  ])('%s', (name, minutes, expected) => {
    const { job, pods } = fixture(name);
    expect(classify(job, pods, at(minutes), grace)).toMatchObject(expected);
  });

  it('an evicted pod says so in the reason', () => {
    const { job, pods } = fixture('pod-evicted');
    expect(classify(job, pods, at(1), grace)).toMatchObject({
      reason: expect.stringContaining('evicted or preempted: The node was low on resource'),
    });
  });

  it("reports Pending with the scheduler's reason, and as stuck after the grace period", () => {
    const { job, pods } = fixture('pod-unschedulable-gpu');
    const early = classify(job, pods, at(1), grace);
    expect(early).toMatchObject({
      phase: 'pending',
      reason: 'Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
    });
    expect(early).not.toHaveProperty('stuck');
    expect(classify(job, pods, at(6), grace)).toMatchObject({ phase: 'pending', stuck: true });
    expect(classify(job, pods, at(61), grace)).toMatchObject({
      phase: 'failed',
      type: 'StageUnschedulable',
      retryable: false,
      abandon: true,
      reason: 'Pending for 61 min: Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
    });
  });

  it('ImagePullBackOff waits out its grace period, then fails non-retryably', () => {
    const { job, pods } = fixture('pod-image-pull-backoff');
    expect(classify(job, pods, at(1), grace)).toMatchObject({
      phase: 'pending',
      reason: expect.stringContaining('ImagePullBackOff'),
    });
    expect(classify(job, pods, at(3), grace)).toMatchObject({
      phase: 'failed',
      type: 'InvalidImage',
      retryable: false,
    });
  });
});
