/**
 * `s3://bucket/key` backend through AWS SDK v3, for AWS S3 or any S3-compatible server (endpoint +
 * path-style addressing). Credentials come from the SDK's default chain (environment, web identity, IRSA),
 * never from the run spec.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { StoreError, type ArtifactStore, type ObjectInfo, type PutOptions } from './store.js';

export interface S3StoreOptions {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
}

function split(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new StoreError('Invalid', `${uri}: not an s3://bucket/key URI`);
  return { bucket: m[1]!, key: m[2]! };
}

function status(e: unknown): number | undefined {
  return e instanceof S3ServiceException ? e.$metadata.httpStatusCode : undefined;
}

/** Translates SDK errors: 412/409 on a conditional write is PreconditionFailed; the rest is Unavailable. */
function translate(uri: string, e: unknown): StoreError {
  const code = status(e);
  const name = (e as Error).name;
  if (code === 412 || name === 'PreconditionFailed' || (code === 409 && name === 'ConditionalRequestConflict')) {
    return new StoreError('PreconditionFailed', `${uri}: precondition failed (${name})`, { cause: e });
  }
  return new StoreError('Unavailable', `${uri}: ${name}: ${(e as Error).message}`, { cause: e });
}

export class S3Store implements ArtifactStore {
  readonly client: S3Client;

  constructor(options: S3StoreOptions = {}) {
    this.client = new S3Client({
      region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
      endpoint: options.endpoint ?? process.env.AWS_ENDPOINT_URL,
      forcePathStyle: options.forcePathStyle ?? true,
    });
  }

  async get(uri: string): Promise<Buffer | null> {
    const { bucket, key } = split(uri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (e) {
      if (status(e) === 404 || (e as Error).name === 'NoSuchKey') return null;
      throw translate(uri, e);
    }
  }

  async sha256(uri: string): Promise<string | null> {
    const { bucket, key } = split(uri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const hash = createHash('sha256');
      for await (const chunk of out.Body as Readable) hash.update(chunk as Buffer);
      return hash.digest('hex');
    } catch (e) {
      if (status(e) === 404 || (e as Error).name === 'NoSuchKey') return null;
      throw translate(uri, e);
    }
  }

  async head(uri: string): Promise<ObjectInfo | null> {
    const { bucket, key } = split(uri);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { uri, size: out.ContentLength ?? 0, etag: out.ETag?.replace(/"/g, '') };
    } catch (e) {
      if (status(e) === 404 || (e as Error).name === 'NotFound') return null;
      throw translate(uri, e);
    }
  }

  async put(uri: string, body: Buffer | string, options: PutOptions = {}): Promise<ObjectInfo> {
    const { bucket, key } = split(uri);
    const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: data,
          ContentType: options.contentType,
          IfNoneMatch: options.ifNoneMatch ? '*' : undefined,
          IfMatch: options.ifMatch !== undefined ? `"${options.ifMatch}"` : undefined,
        }),
      );
      return { uri, size: data.length, etag: out.ETag?.replace(/"/g, '') };
    } catch (e) {
      throw translate(uri, e);
    }
  }

  /** Multipart upload of a stream of unknown length (5 MiB parts, a few in flight). */
  async putStream(uri: string, body: Readable, partSize = 5 * 1024 * 1024): Promise<void> {
    const { bucket, key } = split(uri);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: body },
      partSize,
      queueSize: 2,
      leavePartsOnError: false, // aborts the multipart upload so no orphaned parts are billed
    });
    try {
      await upload.done();
    } catch (e) {
      throw translate(uri, e);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const { bucket, key } = split(prefix);
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: key, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          out.push({ uri: `s3://${bucket}/${o.Key}`, size: o.Size ?? 0, etag: o.ETag?.replace(/"/g, '') });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw translate(prefix, e);
    }
    return out;
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = split(uri);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (e) {
      throw translate(uri, e);
    }
  }
}
