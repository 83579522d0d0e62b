/**
 * Fault: the S3 server stopped for 60 s in the middle of a stage, then started again on the same data. A
 * SeaweedFS of the test's own (its own ports and data dir), the round's artifacts on it, the scripted jobs
 * writing their outputs with boto3 like the real ones. While the train job runs, SeaweedFS is stopped; it
 * comes back 60 s later. The round must complete by itself (retries, no operator), and nothing may be lost:
 * every file every stage manifest lists is in the bucket with its size.
 */
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundProgress, RoundResult } from '../../common/types.js';
import { startS3Dev, type S3Dev } from '../../scripts/dev/s3-dev.js';
import { progressQuery } from '../../workflows/messages.js';
import { fileRoot } from '../helpers/env.js';
import { freePortBlock, launchedMoreThan, launchesPerStage, readLaunches, sleep, until } from '../helpers/faults.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const OUTAGE_MS = 60_000;

describe('fault: the S3 server down for 60 s mid-stage', () => {
  it('the stage is retried, the round completes without an operator, nothing is lost', async () => {
    const basePort = await freePortBlock(8);
    const dir = path.resolve('test-output', `fault-s3-${basePort}`, 'data');
    const bucket = 'tao-fault';
    const start = (keepData: boolean) => startS3Dev({ dir, basePort, bucket, keepData });
    let s3: S3Dev = await start(false);
    const saved = { ...process.env };
    // the worker's store and the jobs read the credentials and endpoint from the environment
    Object.assign(process.env, s3.env);
    const s = scripted();
    s.setScript({ train: { steps: 4, sleep: 6 } });
    const queue = uniqueQueue('fault-s3');
    const spec = roundSpec(fileRoot('fault-s3-prompts'), {
      name: 'faults3',
      artifacts: {
        uri: `s3://${bucket}/faults3-${queue.slice(-8)}`,
        s3: { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true },
      },
    });
    const { client, close } = await testClient();
    let outage: Promise<void> | undefined;
    try {
      await withWorker(queue, s.deps, async () => {
        const handle = await client.workflow.start(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: `tao/fault-s3/${queue}`,
          args: [spec],
        });
        await until('the train job to start', () => s.launches().some((l) => l.stage === 'train'), 120_000);
        outage = (async () => {
          await s3.stop();
          await sleep(OUTAGE_MS);
          s3 = await start(true);
        })();
        const result = await Promise.race([
          handle.result() as Promise<RoundResult>,
          // a round parked at the operator desk did not survive the outage by itself: fail with its reason
          (async () => {
            await outage;
            await until(
              'the round to finish or wait for an operator',
              async () => {
                const p: RoundProgress = await handle.query(progressQuery);
                return p.waiting.length > 0;
              },
              240_000,
            );
            const p: RoundProgress = await handle.query(progressQuery);
            throw new Error(`the round waits for an operator: ${JSON.stringify(p.waiting.map((w) => w.message))}`);
          })(),
        ]);
        expect(result.promoted).toBe(true);

        // nothing lost: every file of every stage's manifest is there with its size
        const store = new S3Client({
          endpoint: s3.endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: s3.credentials,
        });
        const manifests = [
          ...result.artifacts.prompts.map((p) => p.replace(/prompts\/shard-\d+\.jsonl$/, 'manifest.json')),
          ...[result.artifacts.generations, result.artifacts.scores]
            .flat()
            .map((u) => u.replace(/[^/]+$/, 'manifest.json')),
          result.artifacts.dataset.replace(/[^/]+$/, 'manifest.json'),
          result.artifacts.adapter.replace(/adapter\/?$/, 'manifest.json'),
          result.artifacts.report.replace(/[^/]+$/, 'manifest.json'),
        ];
        let checked = 0;
        for (const m of new Set(manifests)) {
          const u = new URL(m);
          const key = u.pathname.slice(1);
          const got = await store.send(new GetObjectCommand({ Bucket: u.host, Key: key }));
          const body = await got.Body!.transformToString();
          const manifest = JSON.parse(body) as { files: { path: string; size: number }[] };
          for (const f of manifest.files) {
            const head = await store.send(
              new HeadObjectCommand({ Bucket: u.host, Key: key.replace(/manifest\.json$/, f.path) }),
            );
            expect(head.ContentLength, `${m}: ${f.path}`).toBe(f.size);
            checked++;
          }
        }
        expect(checked).toBeGreaterThanOrEqual(9);
        store.destroy();
      });
    } finally {
      await outage?.catch(() => undefined);
      await close();
      await s3.stop();
      for (const k of Object.keys(s3.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    const launches = readLaunches(s.launchLog);
    // only the stage the outage hit may have run again
    const { train, ...others } = launchesPerStage(launches);
    expect(train).toBeGreaterThanOrEqual(1);
    expect(others).toEqual({ prepare: 1, generate: 2, score: 2, dataset: 1, evaluate: 1 });
    expect(Object.keys(launchedMoreThan(launches, 1)).every((k) => k.startsWith('train@'))).toBe(true);
  }, 420_000);
});
