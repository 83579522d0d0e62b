import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inject } from 'vitest';

/** A fresh, unique artifact root per test (file:// under test-output/, or s3:// under the test bucket). */
export function fileRoot(name: string): string {
  const dir = path.resolve('test-output', 'runs', `${name}-${randomUUID().slice(0, 8)}`);
  fs.mkdirSync(dir, { recursive: true });
  return pathToFileURL(dir).href;
}

export function s3Root(name: string): string {
  return `s3://${inject('s3Bucket')}/${name}-${randomUUID().slice(0, 8)}`;
}

/** Makes the injected S3 credentials visible to the AWS SDK in this process and to child jobs. */
export function useS3Env(): void {
  Object.assign(process.env, inject('s3Env'));
}
