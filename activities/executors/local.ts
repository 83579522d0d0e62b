/**
 * The `local` executor (embedded default): runs the stage job contract as a child process of the worker.
 *
 * - The child gets its own process group, so cancelling kills the job and everything it spawned
 *   (SIGTERM to the group, SIGKILL after a grace period).
 * - The child is also told to die with the worker (`TAO_EXIT_WITH_PARENT`: the job sets PR_SET_PDEATHSIG),
 *   so a crashed worker leaves no orphan burning CPU; the retry on another worker simply starts it again
 *   (local jobs cannot be adopted: there is no control plane to find them in).
 * - stdout JSON lines are progress; every line of stdout and stderr goes to the log, which is streamed to
 *   the artifact store while the job runs and uploaded whole at the end.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { ArtifactStore } from '../artifacts/store.js';
import { logStore, progressEvent, type Executor, type JobOutcome, type RunContext, type StageJob } from './executor.js';

export interface LocalExecutorOptions {
  python: string;
  /** Directory that contains the `tao_jobs` package (put on PYTHONPATH). */
  jobsSrc: string;
  /** The log store when the run context names none (see RunContext.store). */
  store?: ArtifactStore;
  /** Extra environment for the jobs (e.g. AWS credentials for an S3 store). */
  env?: Record<string, string>;
  killGraceMs?: number;
  logUploadIntervalMs?: number;
}

const TAIL_LINES = 30;

export class LocalExecutor implements Executor {
  readonly kind = 'local' as const;
  /** Spawn and exit times of every job this executor ran (bounded), for the orchestration benchmark. */
  readonly timeline: { name: string; stage: string; shard: number | null; spawnedAt: number; exitedAt?: number }[] = [];

  constructor(private readonly options: LocalExecutorOptions) {}

  async run(job: StageJob, ctx: RunContext): Promise<JobOutcome> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `tao-${job.name}-`));
    const reasonFile = path.join(dir, 'termination-log');
    const logFile = path.join(dir, 'job.log');
    const log = createWriteStream(logFile);
    const tail: string[] = [];
    const remember = (line: string) => {
      log.write(line + '\n');
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };

    ctx.onProgress({ phase: 'starting' });
    const entry = {
      name: job.name,
      stage: job.stage,
      shard: job.shard,
      spawnedAt: Date.now(),
    } as (typeof this.timeline)[number];
    this.timeline.push(entry);
    if (this.timeline.length > 10_000) this.timeline.shift();
    const child = spawn(this.options.python, ['-m', 'tao_jobs', job.stage, '--spec', job.specUri], {
      detached: true, // own process group: kill(-pid) reaches every descendant
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...this.options.env,
        PYTHONPATH: this.options.jobsSrc,
        PYTHONUNBUFFERED: '1',
        HF_HUB_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
        TOKENIZERS_PARALLELISM: 'false',
        TAO_TERMINATION_LOG: reasonFile,
        TAO_EXIT_WITH_PARENT: '1',
        TAO_JOB_NAME: job.name,
      },
    });
    ctx.onProgress({ phase: 'running' });

    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      remember(line);
      const event = progressEvent(line);
      if (event) ctx.onProgress({ phase: 'running', ...event });
    });
    readline.createInterface({ input: child.stderr! }).on('line', remember);

    const kill = () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        return;
      }
      setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, this.options.killGraceMs ?? 5000).unref();
    };
    if (ctx.signal.aborted) kill();
    ctx.signal.addEventListener('abort', kill, { once: true });

    const store = logStore(ctx, this.options.store);
    const uploadLog = () =>
      store.putStream(job.logUri, createReadStream(logFile)).catch(() => {
        /* the log is best effort while running; the final upload below reports errors */
      });
    const uploader = setInterval(uploadLog, this.options.logUploadIntervalMs ?? 15000);

    const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, sig) => resolve([code, sig]));
    }).finally(() => {
      entry.exitedAt = Date.now();
      clearInterval(uploader);
      ctx.signal.removeEventListener('abort', kill);
    });
    await new Promise<void>((resolve) => log.end(resolve));
    await store.putStream(job.logUri, createReadStream(logFile));
    const reason = (await fs.readFile(reasonFile, 'utf8').catch(() => '')).trim();
    await fs.rm(dir, { recursive: true, force: true });
    ctx.onProgress({ phase: exitCode === 0 ? 'succeeded' : 'failed' });
    return { exitCode, signal, reason, logTail: tail };
  }
}
