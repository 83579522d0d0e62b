/** `file://` backend: atomic writes by rename, create-only by hard link (POSIX gives both atomically). */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import { StoreError, type ArtifactStore, type ObjectInfo, type PutOptions } from './store.js';

function toPath(uri: string): string {
  if (!uri.startsWith('file:///')) throw new StoreError('Invalid', `${uri}: not an absolute file:// URI`);
  return fileURLToPath(uri);
}

const etagOf = (data: Buffer) => createHash('md5').update(data).digest('hex');

export class FileStore implements ArtifactStore {
  async get(uri: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(toPath(uri));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StoreError('Unavailable', `${uri}: ${(e as Error).message}`, { cause: e });
    }
  }

  async head(uri: string): Promise<ObjectInfo | null> {
    const data = await this.get(uri);
    return data ? { uri, size: data.length, etag: etagOf(data) } : null;
  }

  async put(uri: string, body: Buffer | string, options: PutOptions = {}): Promise<ObjectInfo> {
    const target = toPath(uri);
    const data = Buffer.isBuffer(body) ? body : Buffer.from(body);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
    await fs.writeFile(tmp, data);
    try {
      if (options.ifNoneMatch) {
        try {
          await fs.link(tmp, target);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new StoreError('PreconditionFailed', `${uri}: already exists`);
          }
          throw e;
        }
      } else {
        if (options.ifMatch !== undefined) {
          // Not atomic against a concurrent writer on a plain file system; good enough for one local worker.
          const current = await this.head(uri);
          if (!current || current.etag !== options.ifMatch) {
            throw new StoreError('PreconditionFailed', `${uri}: changed since it was read`);
          }
        }
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
    const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
    await pipeline(body, createWriteStream(tmp));
    await fs.rename(tmp, target);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const root = toPath(prefix);
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile()) out.push({ uri: pathToFileURL(full).href, size: (await fs.stat(full)).size });
      }
    };
    await walk(root);
    return out.sort((a, b) => (a.uri < b.uri ? -1 : 1));
  }

  async delete(uri: string): Promise<void> {
    await fs.rm(toPath(uri), { force: true });
  }
}
