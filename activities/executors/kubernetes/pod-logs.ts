/**
 * Streams the logs of a stage Job's pods (through the apiserver's pods/log, i.e. from the kubelet) into the
 * artifact store while the Job runs, keeps the last lines for failure messages, and hands every line to a
 * callback (the stage's JSON-lines progress events come on stdout).
 *
 * One follow stream per pod (a retried pod gets its own section); the log is uploaded whole every
 * `uploadEveryMs` when it grew, and once more at the end. Logs are best effort: a node that serves no logs
 * (a fake node) leaves a note in the log instead of failing the stage.
 */
import { Log, type KubeConfig } from '@kubernetes/client-node';
import { createReadStream, createWriteStream, mkdtempSync, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { PassThrough } from 'node:stream';
import type { ArtifactStore } from '../../artifacts/store.js';

const TAIL_LINES = 30;

export interface PodLogsOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  container: string;
  store: ArtifactStore;
  logUri: string;
  uploadEveryMs?: number;
  onLine?: (line: string) => void;
}

interface Followed {
  abort?: AbortController;
  /** Resolves when the stream ended (container exited) or failed. */
  ended: Promise<void>;
  ok: boolean;
}

export class PodLogs {
  readonly tail: string[] = [];
  private readonly followed = new Map<string, Followed>();
  private dir: string | undefined;
  private file: WriteStream | undefined;
  private written = 0;
  private uploaded = 0;
  private uploader: NodeJS.Timeout | undefined;

  constructor(private readonly options: PodLogsOptions) {}

  /** Follows a pod's log from its start, once per pod (call again freely: later calls do nothing). */
  follow(pod: string): void {
    if (this.followed.has(pod)) return;
    const entry: Followed = { ended: Promise.resolve(), ok: true };
    this.followed.set(pod, entry);
    entry.ended = this.stream(pod, entry);
  }

  /** Waits (bounded) for the followed streams to end, then uploads the whole log a last time. */
  async finish(waitMs = 5000): Promise<void> {
    await Promise.race([
      Promise.all([...this.followed.values()].map((f) => f.ended)),
      new Promise((r) => setTimeout(r, waitMs).unref()),
    ]);
    this.close();
    await this.upload(true);
    if (this.dir) await fs.rm(this.dir, { recursive: true, force: true });
  }

  /** Stops following (worker shutdown, cancel): what was read so far is uploaded by `finish`. */
  close(): void {
    clearInterval(this.uploader);
    for (const f of this.followed.values()) f.abort?.abort();
  }

  private async stream(pod: string, entry: Followed): Promise<void> {
    this.line(`--- pod ${pod} ---`);
    const through = new PassThrough();
    const ended = new Promise<void>((resolve) => {
      readline
        .createInterface({ input: through })
        .on('line', (l) => this.line(l))
        .on('close', resolve);
    });
    try {
      entry.abort = await new Log(this.options.kubeConfig).log(
        this.options.namespace,
        pod,
        this.options.container,
        through,
        { follow: true },
      );
    } catch (e) {
      entry.ok = false;
      // the client's message repeats the body and headers: the first line says it all
      const why = ((e as Error).message ?? String(e)).split('\n').slice(0, 2).join(' ');
      this.line(`(no log from pod ${pod}: ${why})`);
      through.end();
    }
    await ended;
  }

  private line(text: string) {
    this.tail.push(text);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    this.options.onLine?.(text);
    this.openFile().write(text + '\n');
    this.written++;
  }

  private openFile(): WriteStream {
    if (!this.file) {
      // synchronous on purpose: the first line must have a file to go to
      this.dir = mkdtempSync(path.join(os.tmpdir(), 'tao-k8s-log-'));
      this.file = createWriteStream(path.join(this.dir, 'job.log'));
      this.uploader = setInterval(() => void this.upload(false), this.options.uploadEveryMs ?? 15_000);
      this.uploader.unref();
    }
    return this.file;
  }

  private async upload(final: boolean): Promise<void> {
    if (!this.file || (!final && this.written === this.uploaded)) return;
    const lines = this.written;
    if (final) await new Promise<void>((r) => this.file!.end(r));
    else await new Promise<void>((r) => this.file!.write('', () => r()));
    try {
      await this.options.store.putStream(this.options.logUri, createReadStream(this.file.path as string));
      this.uploaded = lines;
    } catch (e) {
      if (final) throw e; // while running the log is best effort; the last upload reports errors
    }
  }
}
