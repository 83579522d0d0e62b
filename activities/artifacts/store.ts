/**
 * The artifact store: everything a round produces lives here, addressed by URI. Two backends: `file://` for
 * a laptop or CI, `s3://` for any S3-compatible service. Library errors are translated here into
 * `StoreError`s and never leak further.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  uri: string;
  size: number;
  etag?: string;
}

export interface PutOptions {
  /** Create only: fail with `PreconditionFailed` when the object already exists. */
  ifNoneMatch?: boolean;
  /** Replace only the version with this ETag (optimistic concurrency for pointers). */
  ifMatch?: string;
  contentType?: string;
}

export interface ArtifactStore {
  /** The object's bytes, or null when it does not exist. */
  get(uri: string): Promise<Buffer | null>;
  head(uri: string): Promise<ObjectInfo | null>;
  put(uri: string, body: Buffer | string, options?: PutOptions): Promise<ObjectInfo>;
  /** Streams a body of unknown length (multipart on S3). */
  putStream(uri: string, body: Readable): Promise<void>;
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(uri: string): Promise<void>;
  /** sha256 (hex) of the object's bytes, streamed (models are many GB), or null when it does not exist. */
  sha256(uri: string): Promise<string | null>;
}

export type StoreErrorCode = 'PreconditionFailed' | 'Unavailable' | 'Invalid';

/** Why a store operation failed. `Unavailable` is worth retrying; the others are not. */
export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/**
 * Turns `file:relative/path` into `file:///abs/path` against `baseDir` (the worker's working directory),
 * leaving other URIs alone. Stage jobs only ever see absolute URIs.
 */
export function resolveUri(uri: string, baseDir: string = process.cwd()): string {
  if (uri.startsWith('file:') && !uri.startsWith('file://')) {
    return 'file://' + path.resolve(baseDir, uri.slice('file:'.length));
  }
  return uri;
}

export function joinUri(prefix: string, ...parts: string[]): string {
  return parts.reduce((acc, p) => acc.replace(/\/+$/, '') + '/' + p.replace(/^\/+/, ''), prefix);
}
