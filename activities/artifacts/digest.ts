/**
 * Content digests of what a stage reads but no stage produced, for its memo key (run-stage.ts; the full list
 * of key inputs is in docs/architecture.md#why-keys-are-content-hashes).
 *
 * - `file://` files and folders: sha256 of every file's bytes (a folder: of `path sha256` lines), so a model
 *   retrained in place with the same file names and sizes is a new input. Hashing a multi-GB model on every
 *   stage would be slow, so each file's hash is remembered per worker by (device, inode, size, mtime, ctime):
 *   a rewritten file changes its ctime, which no user tool can set back.
 * - `s3://` objects: sha256 of the bytes up to 64 MiB (the prompts), else the ETag with the size; folders: the
 *   listing with sizes and ETags. An S3 ETag changes with every write of different content (MD5 of the body,
 *   or of its parts for multipart uploads).
 * - `tiny://` models: the URI itself (the model is built from it).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { canonicalJson } from '../../common/hash.js';
import type { ArtifactStore } from './store.js';

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const S3_HASH_MAX_BYTES = 64 * 1024 * 1024;

/** Per-worker cache of file hashes, keyed by path and validated by the file's identity and times. */
const fileHashes = new Map<string, { stamp: string; sha: string }>();

async function hashFile(file: string): Promise<string> {
  const st = await fs.stat(file, { bigint: true });
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  const known = fileHashes.get(file);
  if (known?.stamp === stamp) return known.sha;
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  const sha = hash.digest('hex');
  fileHashes.set(file, { stamp, sha });
  return sha;
}

async function walk(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(full, base)));
    else if (entry.isFile()) out.push(full);
  }
  return out.sort();
}

/** The digest of an input, or null when it does not exist. */
export async function digestInput(store: ArtifactStore, uri: string): Promise<string | null> {
  if (uri.startsWith('tiny://')) return sha256(uri);
  if (uri.startsWith('file://')) {
    const p = fileURLToPath(uri);
    const st = await fs.stat(p).catch(() => null);
    if (!st) return null;
    if (st.isFile()) return hashFile(p); // the same value as before for files: sha256 of the bytes
    const files = await walk(p);
    if (files.length === 0) return null;
    const lines: string[] = [];
    for (const f of files) lines.push(`${path.relative(p, f)} ${await hashFile(f)}`);
    return sha256(lines.join('\n'));
  }
  const object = await store.head(uri);
  if (object) {
    if (object.size <= S3_HASH_MAX_BYTES) return sha256((await store.get(uri)) ?? '');
    return sha256(`etag:${object.etag ?? ''}:${object.size}`);
  }
  const listing = await store.list(uri.endsWith('/') ? uri : uri + '/');
  if (listing.length === 0) return null;
  return sha256(listing.map((o) => `${o.uri.slice(uri.length)}:${o.size}:${o.etag ?? ''}`).join('\n'));
}

/** A resource named in a stage's params (a model folder, a database), with where it was found. */
export interface ParamResource {
  /** JSON path in the params, e.g. `scorers.2.params.database`. */
  at: string;
  uri: string;
}

/** What the params name beyond their own values, found by walking them. */
export interface ParamRefs {
  /** Every string value that is a `file:` or `s3://` URI: a resource whose content decides the output. */
  resources: ParamResource[];
  /** Modules of `python` scorers (`module: "pkg.mod:function"` → `pkg.mod`): their source is code. */
  modules: string[];
  /** Judge endpoints with the model they name: the served model's identity decides the scores. */
  judges: { at: string; endpoint: string; model: string }[];
}

export function paramRefs(params: unknown): ParamRefs {
  const refs: ParamRefs = { resources: [], modules: [], judges: [] };
  const visit = (v: unknown, at: string) => {
    if (typeof v === 'string') {
      if (/^(file:|s3:\/\/)/.test(v)) refs.resources.push({ at, uri: v });
      return;
    }
    if (Array.isArray(v)) return v.forEach((x, i) => visit(x, at ? `${at}.${i}` : String(i)));
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    const p = o.params as Record<string, unknown> | undefined;
    if (o.type === 'python' && typeof p?.module === 'string') refs.modules.push(p.module.split(':')[0]!);
    if (typeof o.type === 'string' && o.type.startsWith('judge') && typeof p?.endpoint === 'string') {
      refs.judges.push({ at, endpoint: p.endpoint, model: String(p.model ?? '') });
    }
    for (const [k, x] of Object.entries(o)) visit(x, at ? `${at}.${k}` : k);
  };
  visit(params, '');
  refs.modules = [...new Set(refs.modules)].sort();
  return refs;
}

/**
 * The identity of the model a judge endpoint serves under `model`: its entry in the OpenAI-compatible
 * `GET <endpoint>/models` list, without the per-request `created` time (vLLM's `root` is the model path,
 * `max_model_len` its context). A served model swapped behind the same name is then a new key. An endpoint the
 * worker cannot reach gives `unreachable` (the job itself will fail or succeed on its own; the key then pins
 * only the endpoint and model name from the params).
 */
export async function judgeIdentity(endpoint: string, model: string, timeoutMs = 5000): Promise<string> {
  const base = endpoint.replace(/\/+$/, '').replace(/\/chat\/completions$/, '');
  try {
    const r = await fetch(`${base}/models`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return `unreachable: HTTP ${r.status}`;
    const body = (await r.json()) as { data?: Record<string, unknown>[] };
    const entry = (body.data ?? []).find((m) => m.id === model);
    if (!entry) return 'not listed';
    const { created: _created, ...stable } = entry;
    return canonicalJson(stable);
  } catch (e) {
    return `unreachable: ${(e as Error).name}`;
  }
}
