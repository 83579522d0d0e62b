/**
 * The stage activity through Temporal's MockActivityEnvironment, with the real local executor running the
 * scripted stand-in jobs as real child processes: heartbeats, cancellation, failure classification, memoization.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRunStage } from '../../activities/run-stage.js';
import type { RunStageInput, StageResult } from '../../common/types.js';
import { fileRoot } from '../helpers/env.js';
import { alive } from '../helpers/process.js';
import { scripted } from '../helpers/scripted.js';
import { stageInput } from '../helpers/specs.js';

/** MockActivityEnvironment.run loses the activity's result type; restore it here. */
const runIn = (env: MockActivityEnvironment, deps: ReturnType<typeof scripted>['deps'], input: RunStageInput) =>
  env.run(createRunStage(deps), input) as Promise<StageResult>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a caught failure, inspected field by field
const failureOf = (p: Promise<unknown>): Promise<any> => p.catch((e: unknown) => e);

describe('runStage activity', () => {
  it('runs the job, heartbeats its progress and returns references from the manifest', async () => {
    const s = scripted();
    s.setScript({ prepare: { steps: 4, sleep: 0.8 } });
    const env = new MockActivityEnvironment({ attempt: 1 });
    const beats: Record<string, unknown>[] = [];
    env.on('heartbeat', (d: Record<string, unknown>) => beats.push(d));
    const root = fileRoot('act');
    const r = await runIn(env, s.deps, stageInput(root));
    expect(r.reused).toBe(false);
    // written in this run's own attempt folder, published by the stage's manifest
    const attempt = `${r.output}attempts/${r.jobName}/`;
    expect(r.outputs.prompts).toEqual([`${attempt}prompts/shard-0000.jsonl`, `${attempt}prompts/shard-0001.jsonl`]);
    expect(r.outputs.model).toBe('tiny://t');
    expect(beats.some((b) => b.phase === 'running' && b.done === 4 && b.total === 4)).toBe(true);
    expect(beats.every((b) => b.jobName === r.jobName)).toBe(true);
    // the job's log was streamed to the artifact store beside its outputs
    expect(fs.readFileSync(new URL(`${attempt}logs/attempt-1.log`), 'utf8')).toContain('"event": "progress"');
    expect(s.launches()).toHaveLength(1);
  });

  it('reuses a finished stage from its manifest without launching a job', async () => {
    const s = scripted();
    const root = fileRoot('memo');
    const first = await runIn(new MockActivityEnvironment(), s.deps, stageInput(root));
    const second = await runIn(new MockActivityEnvironment(), s.deps, stageInput(root));
    expect(second).toMatchObject({ reused: true, key: first.key, output: first.output });
    expect(s.launches()).toHaveLength(1);
    // changed input content means a new key and a new run
    const changed = stageInput(root);
    fs.writeFileSync(new URL(root + '/prompts.jsonl'), '{"id":"2","prompt":"changed"}\n');
    const third = await runIn(new MockActivityEnvironment(), s.deps, changed);
    expect(third.key).not.toBe(first.key);
    expect(s.launches()).toHaveLength(2);
  });

  it('cancellation kills the whole job process group', async () => {
    const s = scripted();
    s.setScript({ prepare: { steps: 60, sleep: 60 } });
    const env = new MockActivityEnvironment();
    const running = runIn(env, s.deps, stageInput(fileRoot('cancel')));
    while (s.launches().length === 0) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500));
    const pid = s.launches()[0]!.pid;
    expect(alive(pid)).toBe(true);
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    expect(alive(pid)).toBe(false);
  });

  it.each([
    [64, 'InvalidStageSpec', true],
    [65, 'ArtifactMissing', true],
    [3, 'StageFailed', false],
  ])('exit %s fails as %s (non-retryable: %s) with the reason and the log tail', async (code, type, nonRetryable) => {
    const s = scripted();
    s.setScript({ prepare: { exit: code, reason: `reason for ${code}` } });
    const err = await failureOf(runIn(new MockActivityEnvironment(), s.deps, stageInput(fileRoot('fail'))));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type, nonRetryable });
    expect(err.message).toContain(`exited ${code}: reason for ${code}`);
    expect(err.message).toContain('scripted failure in prepare');
  });

  it('a missing external input fails before any job is launched, naming the input', async () => {
    const s = scripted();
    const root = fileRoot('missing');
    const input = stageInput(root, {});
    input.inputs = { prompts: root + '/nope.jsonl', model: 'tiny://t' };
    const err = await failureOf(runIn(new MockActivityEnvironment(), s.deps, input));
    expect(err).toMatchObject({ type: 'ArtifactMissing', nonRetryable: true });
    expect(err.message).toContain('input prompts');
    expect(err.message).toContain('nope.jsonl');
    expect(s.launches()).toHaveLength(0);
  });
});
