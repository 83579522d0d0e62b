/**
 * Helpers for the fault tests (tests/integration/fault-*.test.ts) and the soak (bench/soak.ts): free loopback
 * port blocks for servers of their own, `tao worker` processes on the scripted jobs, waiting, and counting
 * what really ran per stage key from the scripted jobs' launch log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const REPO = path.resolve(import.meta.dirname, '..', '..');
// the same as scripted.ts's, without importing vitest (bench/soak.ts runs outside vitest)
const SCRIPTED_JOBS = path.join(REPO, 'tests', 'fixtures', 'scripted-jobs');

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port p such that p .. p+span-1 are all free on 127.0.0.1, searched from `from` in steps of `span`. */
export async function freePortBlock(span: number, from = 41000, to = 60000): Promise<number> {
  // start somewhere different in each process so parallel test runs rarely probe the same block
  const start = from + ((process.pid * 97) % Math.max(1, Math.floor((to - from) / span))) * span;
  for (let i = 0; i < Math.floor((to - from) / span); i++) {
    const base = from + ((start - from + i * span) % (to - from));
    const all = await Promise.all(Array.from({ length: span }, (_, k) => portFree(base + k)));
    if (all.every(Boolean)) return base;
  }
  throw new Error(`no block of ${span} free ports between ${from} and ${to}`);
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface WorkerProcessOptions {
  address: string;
  queue: string;
  python: string;
  scriptFile: string;
  launchLog: string;
  log: string;
  env?: Record<string, string>;
}

/** A real `tao worker` process on the scripted jobs (what production runs, with stand-in jobs). */
export function startWorkerProcess(o: WorkerProcessOptions): ChildProcess {
  const out = fs.openSync(o.log, 'a');
  return spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/tao.ts'), 'worker'], {
    cwd: REPO,
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: o.address,
      TAO_TASK_QUEUE: o.queue,
      TAO_JOBS_SRC: SCRIPTED_JOBS,
      TAO_PYTHON: o.python,
      TAO_SCRIPT: o.scriptFile,
      TAO_LAUNCH_LOG: o.launchLog,
      ...o.env,
    },
  });
}

export interface Launch {
  stage: string;
  shard: number | null;
  pid: number;
  key?: string;
}

export function readLaunches(launchLog: string): Launch[] {
  if (!fs.existsSync(launchLog)) return [];
  return fs
    .readFileSync(launchLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Launch);
}

/** Launches per stage key (`stage[shard]@key`), only those launched more than `atMost` times. */
export function launchedMoreThan(launches: Launch[], atMost = 1): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of launches) {
    const id = `${l.stage}${l.shard === null ? '' : `[${l.shard}]`}@${l.key}`;
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > atMost));
}

/** Launches per stage (all shards together), e.g. {prepare: 1, generate: 2, ...}. */
export function launchesPerStage(launches: Launch[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of launches) counts[l.stage] = (counts[l.stage] ?? 0) + 1;
  return counts;
}

/** SIGKILL a whole process group (a server or worker we started), and wait until the leader is gone. */
export async function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      process.kill(child.pid, signal);
    } catch {
      return;
    }
  }
  await gone;
}
