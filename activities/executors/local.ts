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
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
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

/**
 * Prints what the stage code runs on: the Python version, every installed distribution with its version, and
 * the sha256 of the source of each module named on the command line (a `python` scorer's verifier; a package
 * is every file under it). A module that cannot be found is recorded as missing (the job refuses it, exit 64).
 */
const RUNTIME_PROBE = `
import hashlib, importlib.metadata as md, importlib.util, json, pathlib, sys
dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in md.distributions() if d.metadata['Name']})
mods = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception as e:
        spec = None
    if spec is None or not spec.origin:
        mods[name] = "missing"
        continue
    h = hashlib.sha256()
    roots = list(spec.submodule_search_locations or [])
    files = sorted(p for r in roots for p in pathlib.Path(r).rglob("*") if p.is_file() and "__pycache__" not in p.parts) if roots else [pathlib.Path(spec.origin)]
    for f in files:
        data = f.read_bytes()
        h.update(f"{f.name}/{len(data)}/".encode() + data)
    mods[name] = h.hexdigest()
print(json.dumps({"python": sys.version, "distributions": dists, "modules": mods}, sort_keys=True))
`;

export class LocalExecutor implements Executor {
  readonly kind = 'local' as const;
  /** Spawn and exit times of every job this executor ran (bounded), for the orchestration benchmark. */
  readonly timeline: { name: string; stage: string; shard: number | null; spawnedAt: number; exitedAt?: number }[] = [];

  constructor(private readonly options: LocalExecutorOptions) {}

  /**
   * The Python environment the jobs run in (docs/architecture.md#why-keys-are-content-hashes): Python and
   * library versions (read once per executor: a reinstall takes a worker restart to be seen) and the source of
   * the user modules named in the stage's params (read on every call: a verifier edited in place is new code).
   */
  async runtimeVersion(_stage: StageJob['stage'], modules: string[]): Promise<string> {
    const probe = async (mods: string[]) => {
      const { stdout } = await promisify(execFile)(this.options.python, ['-c', RUNTIME_PROBE, ...mods], {
        env: { ...process.env, ...this.options.env, PYTHONPATH: this.options.jobsSrc },
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout.trim();
    };
    if (modules.length > 0) return probe([...modules].sort());
    this.environment ??= probe([]).catch((e: unknown) => {
      this.environment = undefined; // not cached: the next stage tries again
      throw e;
    });
    return this.environment;
  }

  private environment?: Promise<string>;

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
        ...job.env,
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
