import { describe, expect, it } from 'vitest';
import { jobName } from '../../activities/job-name.js';
import { failureTypeForExit } from '../../common/errors.js';
import { canonicalJson, fnv1a64 } from '../../common/hash.js';

describe('job names', () => {
  const base = { workflowId: 'tao/demo/round-1', round: 1, stage: 'generate', shard: 3, generation: 0 };

  it('are DNS-1123 and at most 60 characters (room for the index of a multi-node pod), even for very long workflow ids', () => {
    for (const workflowId of ['x', 'tao/demo/round-1', 'T'.repeat(300), 'weird ids/with spaces & UNICODE ü']) {
      const n = jobName({ ...base, workflowId });
      expect(n.length).toBeLessThanOrEqual(60);
      expect(n).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it('depend on identity, never on anything else (no attempt number)', () => {
    expect(jobName(base)).toBe(jobName({ ...base }));
    const variants = [
      { shard: 4 },
      { stage: 'score' },
      { round: 2 },
      { generation: 1 },
      { workflowId: 'tao/demo/round-2' },
    ];
    const names = new Set([jobName(base), ...variants.map((v) => jobName({ ...base, ...v }))]);
    expect(names.size).toBe(variants.length + 1);
  });

  it('stay unique when the readable part is truncated', () => {
    const long = 'a'.repeat(100);
    expect(jobName({ ...base, workflowId: long + '1' })).not.toBe(jobName({ ...base, workflowId: long + '2' }));
  });
});

describe('exit code classification (the container contract)', () => {
  it.each([
    [0, null, 'StageFailed'],
    [64, null, 'InvalidStageSpec'],
    [65, null, 'ArtifactMissing'],
    [137, null, 'StageOutOfMemory'],
    [null, 'SIGKILL', 'StageOutOfMemory'],
    [1, null, 'StageFailed'],
    [null, 'SIGTERM', 'StageFailed'],
  ])('exit %s / signal %s is %s', (code, signal, type) => {
    expect(failureTypeForExit(code, signal)).toBe(type);
  });
});

describe('hashes', () => {
  it('canonical JSON ignores key order and undefined values', () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe('{"a":[1,{"d":2}],"b":1}');
    expect(fnv1a64(canonicalJson({ x: 1, y: 2 }))).toBe(fnv1a64(canonicalJson({ y: 2, x: 1 })));
    expect(fnv1a64('a')).not.toBe(fnv1a64('b'));
    expect(fnv1a64('')).toBe('cbf29ce484222325');
  });
});
