/**
 * A whole round on S3 with nothing but the spec (issue 13), against the real SeaweedFS server:
 *  - a real `tao worker` process whose environment has the credentials but NO AWS_ENDPOINT_URL: the spec's
 *    `artifacts.s3.endpoint` alone must lead every component there (stage activity, executor log upload, the
 *    Python stage jobs, promotion); the round is started with the real `temporal workflow start --input-file`,
 *    runs the real stage jobs, and a rerun reuses every stage;
 *  - the store preflight: each misconfiguration fails at once with the endpoint, bucket and reason named,
 *    before any job runs;
 *  - a flywheel run reading its logs from S3.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openStore } from '../../activities/artifacts/open-store.js';
import { S3Store } from '../../activities/artifacts/s3-store.js';
import { createPreflightActivities, type CheckStoreResult } from '../../activities/preflight.js';
import { FLYWHEEL_WORKFLOW, ROUND_WORKFLOW } from '../../common/constants.js';
import type { FlywheelSpecInput } from '../../common/flywheel-spec.js';
import type { RunSpec, RunSpecInput } from '../../common/run-spec.js';
import type { FlywheelResult, RoundResult } from '../../common/types.js';
import { venvBin } from '../../scripts/dev/tools.js';
import { fileRoot, s3Root } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const run = promisify(execFile);

/** The credentials only: the endpoint must come from the spec. */
function credentialsOnly(): Record<string, string> {
  const { AWS_ENDPOINT_URL: _endpoint, ...rest } = inject('s3Env');
  return rest;
}

let savedEnv: NodeJS.ProcessEnv;
beforeAll(() => {
  savedEnv = { ...process.env };
  delete process.env.AWS_ENDPOINT_URL;
  Object.assign(process.env, credentialsOnly());
});
afterAll(() => {
  process.env = savedEnv;
});

const s3Settings = () => ({ endpoint: inject('s3Endpoint'), region: 'us-east-1', forcePathStyle: true });

async function upload(uri: string, file: string) {
  await new S3Store(s3Settings()).put(uri, fs.readFileSync(file));
}

function startWorker(queue: string, log: string): ChildProcess {
  const { AWS_ENDPOINT_URL: _e, ...env } = savedEnv;
  const out = fs.openSync(log, 'a');
  return spawn(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', 'worker'], {
    env: { ...env, ...credentialsOnly(), TEMPORAL_ADDRESS: inject('temporalAddress'), TAO_TASK_QUEUE: queue },
    stdio: ['ignore', out, out],
    detached: true,
  });
}

describe('a whole round on S3, configured by the spec alone', () => {
  it('runs every stage against SeaweedFS with no AWS_ENDPOINT_URL anywhere, then a rerun reuses every stage', async () => {
    const root = s3Root('s3round');
    await upload(`${root}/input/prompts.jsonl`, 'examples/demo/prompts.jsonl');
    const demo = JSON.parse(fs.readFileSync('examples/demo/round.json', 'utf8')) as RunSpecInput;
    const spec: RunSpecInput = {
      ...demo,
      name: 's3round',
      prompts: { ...demo.prompts, uri: `${root}/input/prompts.jsonl` },
      artifacts: { uri: `${root}/artifacts`, s3: s3Settings() },
      // the plumbing is under test, not the model: the cheapest round that still runs every stage
      generation: { ...demo.generation, samplesPerPrompt: 2, shards: 1 },
      training: { ...demo.training, maxSteps: 2 },
    };
    const dir = new URL(fileRoot('s3round')).pathname;
    const specFile = path.join(dir, 'spec.json');
    fs.writeFileSync(specFile, JSON.stringify(spec, null, 2));
    const queue = uniqueQueue('s3round');
    const worker = startWorker(queue, path.join(dir, 'worker.log'));
    const temporal = (args: string[]) => run(venvBin('temporal'), [...args, '--address', inject('temporalAddress')]);
    try {
      const start = (id: string) =>
        temporal([
          'workflow',
          'start',
          '--task-queue',
          queue,
          '--type',
          ROUND_WORKFLOW,
          '--workflow-id',
          id,
          '--input-file',
          specFile,
        ]);
      const result = async (id: string) => {
        const { stdout } = await temporal(['workflow', 'result', '--workflow-id', id, '--output', 'json']);
        return JSON.parse(stdout).result as RoundResult;
      };
      await start(`tao/s3round/${queue}`);
      const first = await result(`tao/s3round/${queue}`);
      expect(first.stages.train).toMatchObject({ status: 'done', jobs: 1 });

      // everything landed in S3 under the spec's root: outputs, manifests and the job logs the executor uploaded
      const store = openStore({ s3: s3Settings() });
      const objects = (await store.list(`${root}/artifacts/stages/`)).map((o) => o.uri.slice(root.length));
      for (const stage of ['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate']) {
        expect(objects.some((u) => u.startsWith(`/artifacts/stages/${stage}/`) && u.endsWith('/manifest.json'))).toBe(
          true,
        );
        expect(
          objects.some((u) => u.startsWith(`/artifacts/stages/${stage}/`) && /\/logs\/attempt-\d+\.log$/.test(u)),
        ).toBe(true);
      }
      expect(first.tunedModel.startsWith(`${root}/artifacts/stages/train/`)).toBe(true);

      await start(`tao/s3round/${queue}-again`);
      const again = await result(`tao/s3round/${queue}-again`);
      // the CLI's JSON turns an empty list into null
      const jobs = (r: RoundResult) => Object.values(r.stages).reduce((n, st) => n + (st?.jobs ?? 0), 0);
      expect(first.reusedStages ?? []).toEqual([]);
      expect(again.reusedStages).toHaveLength(jobs(first));
      expect(jobs(again)).toBe(0);
      expect(again.tunedModel).toBe(first.tunedModel);
    } finally {
      if (worker.pid) process.kill(-worker.pid, 'SIGKILL');
    }
  });
});

describe('the store preflight names what is wrong before any job runs', () => {
  const missingBucket = `no-such-bucket-${Date.now().toString(36)}`;
  const artifacts = (over: Partial<RunSpec['artifacts']>, bucket = inject('s3Bucket')): RunSpec['artifacts'] => ({
    uri: `s3://${bucket}/preflight`,
    s3: s3Settings(),
    ...over,
  });
  const check = (a: RunSpec['artifacts'], inputs: Record<string, string> = {}): Promise<CheckStoreResult> =>
    new MockActivityEnvironment().run(
      createPreflightActivities({ storeFor: (x) => openStore(x), baseDir: process.cwd() }).checkStore,
      { artifacts: a, inputs },
    );

  it('passes with the right settings and an existing input', async () => {
    const root = s3Root('preflight-ok');
    await upload(`${root}/prompts.jsonl`, 'examples/demo/prompts.jsonl');
    const r = await check(artifacts({ uri: root }), { prompts: `${root}/prompts.jsonl`, model: 'tiny://x' });
    expect(r.checked).toEqual([root, `${root}/prompts.jsonl`]);
    expect(await openStore({ s3: s3Settings() }).list(`${root}/.tao-preflight/`)).toEqual([]); // probe cleaned up
  });

  it.each([
    [
      'an unknown host',
      () => artifacts({ s3: { ...s3Settings(), endpoint: 'http://no-such-host.invalid:8333' } }),
      /unknown host.*no-such-host\.invalid|no-such-host\.invalid.*unknown host/,
    ],
    [
      'a refused connection',
      () => artifacts({ s3: { ...s3Settings(), endpoint: 'http://127.0.0.1:9' } }),
      /endpoint http:\/\/127\.0\.0\.1:9\).*connection refused/,
    ],
    ['a missing bucket', () => artifacts({}, missingBucket), /bucket no-such-bucket-\w+.*the bucket does not exist/],
  ])('%s', async (_what, a, message) => {
    const failure = await check(a()).catch((e: Error & { type?: string; nonRetryable?: boolean }) => e);
    expect(failure).toMatchObject({ type: 'StoreMisconfigured', nonRetryable: true });
    expect((failure as Error).message).toMatch(/^store preflight: cannot write the artifact root s3:\/\//);
    expect((failure as Error).message).toMatch(message);
  });

  it('rejected credentials', async () => {
    const key = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = 'not-a-real-key';
    try {
      const failure = await check(artifacts({})).catch((e: Error & { type?: string }) => e);
      expect(failure).toMatchObject({ type: 'StoreMisconfigured', nonRetryable: true });
      expect((failure as Error).message).toMatch(/endpoint http:\/\/127\.0\.0\.1:\d+\): credentials rejected \(\w+\)/);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = key;
    }
  });

  it('a missing prompts file', async () => {
    const failure = await check(artifacts({}), { prompts: `s3://${inject('s3Bucket')}/nowhere/prompts.jsonl` }).catch(
      (e: Error) => e,
    );
    expect(failure).toMatchObject({ type: 'StoreMisconfigured', nonRetryable: true });
    expect((failure as Error).message).toMatch(
      /prompts s3:\/\/.*nowhere\/prompts\.jsonl \(bucket .*, endpoint .*\) does not exist/,
    );
  });

  it('a round with a wrong endpoint fails at once, before any job, with the reason', async () => {
    const s = scripted();
    const root = fileRoot('preflight-round');
    fs.writeFileSync(new URL(`${root}/prompts.jsonl`), '{"id": "a", "prompt": "q"}\n');
    const demo = JSON.parse(fs.readFileSync('examples/demo/round.json', 'utf8')) as RunSpecInput;
    const spec: RunSpecInput = {
      ...demo,
      name: 'preflight',
      prompts: { uri: `${root}/prompts.jsonl` },
      artifacts: {
        uri: `s3://${inject('s3Bucket')}/preflight-round`,
        s3: { ...s3Settings(), endpoint: 'http://127.0.0.1:9' },
      },
    };
    const queue = uniqueQueue('preflight');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const started = Date.now();
      const failure = await client.workflow
        .execute(ROUND_WORKFLOW, { taskQueue: queue, workflowId: `tao/preflight/${queue}`, args: [spec] })
        .catch((e: Error & { cause?: Error & { cause?: Error & { type?: string } } }) => e);
      expect(failure).toBeInstanceOf(Error);
      const cause = (failure as { cause?: { cause?: Error & { type?: string } } }).cause?.cause;
      expect(cause?.type).toBe('StoreMisconfigured');
      expect(cause?.message).toMatch(/endpoint http:\/\/127\.0\.0\.1:9\).*connection refused/);
      expect(s.launches()).toEqual([]); // no job ran
      expect(Date.now() - started).toBeLessThan(60_000); // no retries of a misconfiguration
    });
    await close();
  });
});

describe('the flywheel reads its logs from S3 with the spec settings', () => {
  it('collects the S3 log prefix and runs a round on it', async () => {
    const s = scripted();
    const logs = `${s3Root('fw-logs')}/logs/`;
    const line = (text: string) => JSON.stringify({ model: 'prod', messages: [{ role: 'user', content: text }] });
    await new S3Store(s3Settings()).put(
      `${logs}2026-11-28.jsonl`,
      ['one', 'two', 'three', 'four'].map(line).join('\n') + '\n',
    );
    const root = fileRoot('fw-s3');
    const spec: FlywheelSpecInput = {
      apiVersion: 'tao/v1',
      name: 'fws3',
      source: { uri: logs },
      minNewPrompts: 3,
      template: {
        apiVersion: 'tao/v1',
        baseModel: 'tiny://fw',
        evaluation: { heldOutFraction: 0.25, reuseTrainingScorers: true },
        generation: { shards: 1, samplesPerPrompt: 2 },
        scoring: { scorers: [{ name: 'lower', type: 'regex', params: { pattern: '[a-z]', mode: 'fraction' } }] },
        training: {},
        executor: { type: 'local', heartbeatTimeoutSeconds: 10 },
        // file artifacts (the scripted jobs write files) with the S3 settings the log prefix is read with
        artifacts: { uri: root, s3: s3Settings() },
      },
    } as FlywheelSpecInput;
    const queue = uniqueQueue('fw-s3');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const result = (await client.workflow.execute(FLYWHEEL_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/fws3/${queue}`,
        args: [spec],
      })) as FlywheelResult;
      expect(result.rounds).toHaveLength(1);
      expect(result.state.round).toBe(1);
    });
    await close();
  });
});
