/** Both store backends, the S3 one against a real SeaweedFS server (no mocks). */
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../activities/artifacts/file-store.js';
import { checkManifest } from '../../activities/artifacts/manifest.js';
import { S3Store } from '../../activities/artifacts/s3-store.js';
import { StoreError, joinUri, type ArtifactStore } from '../../activities/artifacts/store.js';
import { fileRoot, s3Root, useS3Env } from '../helpers/env.js';
import { createHash } from 'node:crypto';

beforeAll(useS3Env);

const backends: [string, () => { store: ArtifactStore; root: string }][] = [
  ['file', () => ({ store: new FileStore(), root: fileRoot('store') })],
  ['s3 (SeaweedFS)', () => ({ store: new S3Store({ endpoint: process.env.AWS_ENDPOINT_URL }), root: s3Root('store') })],
];

describe.each(backends)('%s store', (_name, make) => {
  it('puts, gets, heads, lists and deletes', async () => {
    const { store, root } = make();
    await store.put(joinUri(root, 'a/b.txt'), 'hello');
    await store.put(joinUri(root, 'a/c/d.txt'), Buffer.from('world!'));
    expect((await store.get(joinUri(root, 'a/b.txt')))?.toString()).toBe('hello');
    expect(await store.get(joinUri(root, 'missing'))).toBeNull();
    expect(await store.head(joinUri(root, 'missing'))).toBeNull();
    expect((await store.head(joinUri(root, 'a/c/d.txt')))?.size).toBe(6);
    const listed = await store.list(joinUri(root, 'a') + '/');
    expect(listed.map((o) => [o.uri.slice(root.length), o.size])).toEqual([
      ['/a/b.txt', 5],
      ['/a/c/d.txt', 6],
    ]);
    await store.delete(joinUri(root, 'a/b.txt'));
    expect(await store.get(joinUri(root, 'a/b.txt'))).toBeNull();
  });

  it('conditional create: the second create of the same object fails and keeps the first', async () => {
    const { store, root } = make();
    const uri = joinUri(root, 'manifest.json');
    await store.put(uri, 'first', { ifNoneMatch: true });
    const second = store.put(uri, 'second', { ifNoneMatch: true });
    await expect(second).rejects.toBeInstanceOf(StoreError);
    await expect(second).rejects.toMatchObject({ code: 'PreconditionFailed' });
    expect((await store.get(uri))?.toString()).toBe('first');
  });

  it('compare-and-swap with If-Match refuses a stale version', async () => {
    const { store, root } = make();
    const uri = joinUri(root, 'current.json');
    const v1 = await store.put(uri, 'v1', { ifNoneMatch: true });
    const v1head = await store.head(uri);
    expect(v1head?.etag).toBe(v1.etag);
    await store.put(uri, 'v2', { ifMatch: v1head!.etag });
    await expect(store.put(uri, 'v3', { ifMatch: v1head!.etag })).rejects.toMatchObject({ code: 'PreconditionFailed' });
    expect((await store.get(uri))?.toString()).toBe('v2');
  });

  it('streams a 12 MiB body (multipart on S3) intact', async () => {
    const { store, root } = make();
    const uri = joinUri(root, 'big.bin');
    const chunk = Buffer.alloc(1024 * 1024);
    const chunks = Array.from({ length: 12 }, (_, i) => Buffer.from(chunk.fill(i)));
    const expected = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
    await store.putStream(uri, Readable.from(chunks));
    const back = await store.get(uri);
    expect(back?.length).toBe(12 * 1024 * 1024);
    expect(createHash('sha256').update(back!).digest('hex')).toBe(expected);
  });

  it('a manifest is only valid when it is present, matches the stage and key, and its files exist with their sizes', async () => {
    const { store, root } = make();
    const prefix = joinUri(root, 'stages/generate/k1') + '/';
    const expect_ = { stage: 'generate', key: 'k1' };
    expect(await checkManifest(store, prefix, expect_)).toMatchObject({
      valid: false,
      reason: expect.stringContaining('not found'),
    });
    await store.put(joinUri(prefix, 'generations.jsonl'), '{"a":1}\n');
    const manifest = {
      schema: 'tao.manifest/v1',
      stage: 'generate',
      key: 'k1',
      outputs: { generations: 'generations.jsonl' },
      files: [{ path: 'generations.jsonl', size: 8, sha256: 'x', records: 1 }],
      records: { in: 1, out: 1 },
      metrics: {},
      producer: { name: 't', version: '0' },
      timings: { startedAt: 0, finishedAt: 1, durationS: 1 },
    };
    await store.put(joinUri(prefix, 'manifest.json'), JSON.stringify(manifest));
    expect(await checkManifest(store, prefix, expect_)).toMatchObject({ valid: true });
    expect(await checkManifest(store, prefix, { stage: 'generate', key: 'other' })).toMatchObject({ valid: false });
    await store.put(joinUri(prefix, 'generations.jsonl'), '{"a":1}\n{"b":2}\n');
    expect(await checkManifest(store, prefix, expect_)).toMatchObject({
      valid: false,
      reason: expect.stringContaining('bytes'),
    });
    await store.delete(joinUri(prefix, 'generations.jsonl'));
    expect(await checkManifest(store, prefix, expect_)).toMatchObject({
      valid: false,
      reason: expect.stringContaining('missing'),
    });
  });
});

describe('S3 store errors', () => {
  it('an unreachable endpoint is reported as Unavailable, naming the object', async () => {
    const store = new S3Store({ endpoint: 'http://127.0.0.1:1' });
    await expect(store.get('s3://b/k')).rejects.toMatchObject({
      code: 'Unavailable',
      message: expect.stringContaining('s3://b/k'),
    });
  });
});
