/**
 * `file://` backend. Every write goes to a private temporary file first, so readers never see half a file.
 *
 * Conditional writes, atomic on one local file system (POSIX; tests/integration/artifact-store.test.ts races
 * them):
 * - create-only (`ifNoneMatch`): `link(tmp, target)`, which fails with EEXIST when the target exists: exactly
 *   one of any number of concurrent creators wins, and the winner's file appears whole.
 * - replace-if-unchanged (`ifMatch`): compare and rename under an exclusive lock file `<target>.lock`, created
 *   with O_CREAT|O_EXCL (`open(…, 'wx')`). Every conditional writer of the same file takes it, so two cannot both
 *   see the version they read and both replace it. A lock left by a writer that died is broken once its
 *   process (same host) is gone. Plain writes (no condition) do not take the lock: last writer wins, as on S3.
 *
 * On a shared network file system these hold only as far as it implements link, O_EXCL and rename atomically
 * across clients (NFSv4 does for a single server; NFSv2/3 O_EXCL and caching do not), and breaking a dead
 * writer's lock only works on the host that wrote it: use `s3://` for stores shared by several machines
 * (docs/operations.md#store-guarantees).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import { StoreError, type ArtifactStore, type ObjectInfo, type PutOptions } from './store.js';

function toPath(uri: string): string {
  if (!uri.startsWith('file:///')) throw new StoreError('Invalid', `${uri}: not an absolute file:// URI`);
  return fileURLToPath(uri);
}

const etagOf = (data: Buffer) => createHash('md5').update(data).digest('hex');
/** A temporary name no other writer (process or concurrent call) uses. */
const tmpName = (target: string) => `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
const errno = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** How long a conditional writer waits for the lock of a file before giving up (Unavailable, retried). */
const LOCK_WAIT_MS = 30_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === 'EPERM';
  }
}

/** Runs `body` holding `<target>.lock` (see the module comment). */
async function withLock<T>(target: string, body: () => Promise<T>): Promise<T> {
  const lock = `${target}.lock`;
  const token = `${os.hostname()} ${process.pid} ${randomBytes(6).toString('hex')}`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
    try {
      const handle = await fs.open(lock, 'wx');
      await handle.writeFile(token);
      await handle.close();
      break;
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    }
    await breakIfDead(lock);
    if (Date.now() > deadline) throw new StoreError('Unavailable', `${target}: locked by another writer (${lock})`);
    await new Promise((r) => setTimeout(r, wait));
  }
  try {
    return await body();
  } finally {
    // only our own lock: a lock we do not hold is never removed here
    if ((await fs.readFile(lock, 'utf8').catch(() => '')) === token) await fs.rm(lock, { force: true });
  }
}

/**
 * Breaks a lock whose writer (on this host) is gone. The lock is first moved aside under a unique name, so of
 * several breakers only one gets it; if what was moved turns out to be a live writer's lock, it is put back.
 */
async function breakIfDead(lock: string): Promise<void> {
  const owner = await fs.readFile(lock, 'utf8').catch(() => null);
  const [host, pid] = (owner ?? '').split(' ');
  if (!owner || host !== os.hostname() || processAlive(Number(pid))) return;
  const aside = `${lock}.broken-${randomBytes(6).toString('hex')}`;
  try {
    await fs.rename(lock, aside);
  } catch {
    return; // someone else broke or released it
  }
  if ((await fs.readFile(aside, 'utf8').catch(() => null)) !== owner) {
    await fs.link(aside, lock).catch(() => undefined); // a live lock taken by mistake: give it back
  }
  await fs.rm(aside, { force: true });
}

export class FileStore implements ArtifactStore {
  async get(uri: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(toPath(uri));
    } catch (e) {
      if (errno(e) === 'ENOENT') return null;
      throw new StoreError('Unavailable', `${uri}: ${(e as Error).message}`, { cause: e });
    }
  }

  async head(uri: string): Promise<ObjectInfo | null> {
    const data = await this.get(uri);
    return data ? { uri, size: data.length, etag: etagOf(data) } : null;
  }

  async sha256(uri: string): Promise<string | null> {
    const hash = createHash('sha256');
    try {
      await pipeline(createReadStream(toPath(uri)), hash);
    } catch (e) {
      if (errno(e) === 'ENOENT') return null;
      throw new StoreError('Unavailable', `${uri}: ${(e as Error).message}`, { cause: e });
    }
    return hash.digest('hex');
  }

  async put(uri: string, body: Buffer | string, options: PutOptions = {}): Promise<ObjectInfo> {
    try {
      return await this.write(uri, body, options);
    } catch (e) {
      // e.g. ENOSPC: the failure must name the store's path, not only the errno
      if (e instanceof StoreError) throw e;
      throw new StoreError('Unavailable', `${uri}: ${(e as Error).message}`, { cause: e });
    }
  }

  private async write(uri: string, body: Buffer | string, options: PutOptions): Promise<ObjectInfo> {
    const target = toPath(uri);
    const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = tmpName(target);
    await fs.writeFile(tmp, data);
    try {
      if (options.ifNoneMatch) {
        try {
          await fs.link(tmp, target);
        } catch (e) {
          if (errno(e) === 'EEXIST') throw new StoreError('PreconditionFailed', `${uri}: already exists`);
          throw e;
        }
      } else if (options.ifMatch !== undefined) {
        await withLock(target, async () => {
          const current = await this.head(uri);
          if (!current || current.etag !== options.ifMatch) {
            throw new StoreError('PreconditionFailed', `${uri}: changed since it was read`);
          }
          await fs.rename(tmp, target);
        });
      } else {
        await fs.rename(tmp, target);
      }
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return { uri, size: data.length, etag: etagOf(data) };
  }

  async putStream(uri: string, body: Readable): Promise<void> {
    const target = toPath(uri);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = tmpName(target);
    try {
      await pipeline(body, createWriteStream(tmp));
      await fs.rename(tmp, target);
    } catch (e) {
      throw new StoreError('Unavailable', `${uri}: ${(e as Error).message}`, { cause: e });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const root = toPath(prefix);
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return;
        throw e;
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) {
          const size = await fs
            .stat(full)
            .then((s) => s.size)
            .catch(() => null); // removed meanwhile (a loser cleaning up)
          if (size !== null) out.push({ uri: pathToFileURL(full).href, size });
        }
      }
    };
    await walk(root);
    return out.sort((a, b) => (a.uri < b.uri ? -1 : 1));
  }

  async delete(uri: string): Promise<void> {
    await fs.rm(toPath(uri), { force: true });
  }
}
