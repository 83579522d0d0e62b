/**
 * Soak (`npm run soak`, a benchmark, not in CI): N rounds on real `tao worker` processes and a Temporal dev
 * server of its own (persistent database), the scripted stand-in jobs, while a chaos loop SIGKILLs a random
 * worker (restarted a moment later) and, less often, the Temporal server (restarted on the same database).
 * Counts rounds completed, jobs launched per stage key (and how many launches beyond the first are not
 * explained by a kill of the attempt that ran them), artifacts lost (files a manifest lists that are missing
 * or of another size), manifests invalid, and attempts timed out on heartbeat whose job went on (worker logs).
 * Writes test-output/soak/<id>/report.json and prints a summary.
 *
 *   npm run soak -- --rounds 20 --concurrency 4 --workers 2 --kill-every 8 --server-kill-every 4
 *   (--heartbeat 20 --sleep 1 --seed 1 --timeout-min 30)
 */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { checkManifest } from '../activities/artifacts/manifest.js';
import { openStore } from '../activities/artifacts/open-store.js';
import { ROUND_WORKFLOW } from '../common/constants.js';
import type { RunSpecInput } from '../common/run-spec.js';
import type { RoundResult } from '../common/types.js';
import { portOpen } from '../scripts/dev/processes.js';
import { startDevServer, type DevServer } from '../scripts/dev/temporal-dev.js';
import { venvBin } from '../scripts/dev/tools.js';
import {
  freePortBlock,
  killGroup,
  readLaunches,
  sleep,
  startWorkerProcess,
  until,
  type Launch,
} from '../tests/helpers/faults.js';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '4' },
    workers: { type: 'string', default: '2' },
    'kill-every': { type: 'string', default: '8' }, // mean seconds between worker kills
    'server-kill-every': { type: 'string', default: '4' }, // every n-th kill is the Temporal server
    heartbeat: { type: 'string', default: '20' },
    sleep: { type: 'string', default: '1' }, // seconds each scripted job works
    seed: { type: 'string', default: '1' },
    'timeout-min': { type: 'string', default: '30' },
  },
});
const N = Number(opt.rounds);
const CONCURRENCY = Number(opt.concurrency);
const WORKERS = Number(opt.workers);
const KILL_EVERY_S = Number(opt['kill-every']);
const SERVER_EVERY = Number(opt['server-kill-every']);
const HEARTBEAT_S = Number(opt.heartbeat);
const JOB_SLEEP_S = Number(opt.sleep);

// deterministic chaos for a given seed (mulberry32)
let seed = Number(opt.seed) >>> 0;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const id = new Date().toISOString().replace(/[:.]/g, '-');
const dir = path.resolve('test-output', 'soak', id);
const root = pathToFileURL(path.join(dir, 'artifacts')).href;
fs.mkdirSync(path.join(dir, 'artifacts'), { recursive: true });
const launchLog = path.join(dir, 'launches.jsonl');
const scriptFile = path.join(dir, 'script.json');
const stages = ['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate'];
fs.writeFileSync(
  scriptFile,
  JSON.stringify(Object.fromEntries(stages.map((s) => [s, { steps: 4, sleep: JOB_SLEEP_S }]))),
);

function spec(round: number): RunSpecInput {
  // a prompts file per round: every round has its own stage keys (plus the shared prepare-free parts none)
  const prompts = path.join(dir, `prompts-${round}.jsonl`);
  fs.writeFileSync(
    prompts,
    Array.from({ length: 8 }, (_, i) => JSON.stringify({ id: `r${round}p${i}`, prompt: `q ${round} ${i}` })).join(
      '\n',
    ) + '\n',
  );
  return {
    apiVersion: 'tao/v1',
    name: 'soak',
    round,
    baseModel: 'tiny://soak',
    prompts: { uri: pathToFileURL(prompts).href },
    evaluation: { heldOutFraction: 0.25, reuseTrainingScorers: true },
    generation: { shards: 2, samplesPerPrompt: 2, maxTokens: 8 },
    scoring: { scorers: [{ name: 'lower', type: 'regex', params: { pattern: '[a-z]', mode: 'fraction' } }] },
    training: { maxSteps: 2 },
    executor: { type: 'local', heartbeatTimeoutSeconds: HEARTBEAT_S },
    artifacts: { uri: root },
  };
}

/** Pids of the live children of a process (a worker's stage jobs), from /proc. */
function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * Waits until a process sent SIGSTOP has really stopped (state T): kill() only queues the signal, and a worker
 * caught inside fork() would otherwise add a job after its children were listed.
 */
async function stopped(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if ('Tt'.includes(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!)) return;
    } catch {
      return; // gone
    }
    await sleep(20);
  }
}

async function main() {
  const port = await freePortBlock(12);
  const serverDir = path.join(dir, 'temporal');
  const startServer = () => startDevServer({ dir: serverDir, port, headless: true, persistent: true });
  let server: DevServer = await startServer();
  const queue = `soak-${id.slice(-12)}`;
  const python = venvBin('python');
  const workers: (ChildProcess | undefined)[] = [];
  const killedWorkers = new Set<number>(); // pids the chaos loop killed; any other exit is the worker's own
  let workerSelfExits = 0;
  let done = false;
  const startWorker = (i: number): ChildProcess => {
    const w = startWorkerProcess({
      address: server.address,
      queue,
      python,
      scriptFile,
      launchLog,
      log: path.join(dir, `worker-${i}.log`),
    });
    workers[i] = w;
    // a supervisor's job (Kubernetes restarts a worker Deployment's pod): a worker that exits on its own, e.g.
    // one started while the server was down, is started again
    w.once('exit', (code, signal) => {
      if (done || killedWorkers.has(w.pid!) || workers[i] !== w) return;
      workerSelfExits++;
      log(`worker ${i} (pid ${w.pid}) exited by itself (${signal ?? code}); restarting it`);
      setTimeout(() => {
        if (!done && workers[i] === w) startWorker(i);
      }, 1000);
    });
    return w;
  };
  for (let i = 0; i < WORKERS; i++) startWorker(i);

  const killedPids = new Set<number>(); // jobs that were running on a worker when it was killed
  const events: string[] = [];
  const log = (m: string) => {
    const line = `${new Date().toISOString()} ${m}`;
    events.push(line);
    console.log(line);
  };
  let workerKills = 0;
  let serverKills = 0;
  let serverDown: Promise<void> | undefined;

  const chaos = (async () => {
    let n = 0;
    while (!done) {
      await sleep((0.5 + random()) * KILL_EVERY_S * 1000);
      if (done) break;
      n++;
      if (SERVER_EVERY > 0 && n % SERVER_EVERY === 0) {
        serverKills++;
        log(`kill -9 Temporal server (pid ${server.child?.pid})`);
        serverDown = (async () => {
          await killGroup(server.child!);
          await until('the server port to close', async () => !(await portOpen(port)), 30_000);
          await sleep(1000 + random() * 2000);
          server = await startServer();
          log('Temporal server restarted on the same database');
        })();
        await serverDown;
        serverDown = undefined;
      } else {
        const i = Math.floor(random() * WORKERS);
        const w = workers[i]!;
        if (w.exitCode !== null || w.signalCode !== null) continue; // exited by itself: being restarted
        killedWorkers.add(w.pid!);
        // frozen first, so no job starts between listing its jobs and the kill (they die with it: PDEATHSIG)
        try {
          process.kill(w.pid!, 'SIGSTOP');
        } catch {
          continue; // exited just now
        }
        await stopped(w.pid!);
        for (const pid of childrenOf(w.pid!)) killedPids.add(pid);
        workerKills++;
        log(`kill -9 worker ${i} (pid ${w.pid})`);
        await killGroup(w);
        await sleep(500 + random() * 2000);
        startWorker(i);
      }
    }
  })();

  /** A round's result, riding out server restarts (a client call during an outage fails: try again). */
  async function resultOf(workflowId: string): Promise<RoundResult> {
    for (;;) {
      try {
        await serverDown;
        const connection = await Connection.connect({ address: server.address });
        try {
          return (await new Client({ connection }).workflow.getHandle(workflowId).result()) as RoundResult;
        } finally {
          await connection.close().catch(() => undefined);
        }
      } catch (e) {
        if (e instanceof WorkflowFailedError) throw e;
        await sleep(1000);
      }
    }
  }

  async function startRound(round: number): Promise<string> {
    const workflowId = `tao/soak/${id}/round-${round}`;
    for (;;) {
      try {
        await serverDown;
        const connection = await Connection.connect({ address: server.address });
        try {
          await new Client({ connection }).workflow.start(ROUND_WORKFLOW, {
            taskQueue: queue,
            workflowId,
            args: [spec(round)],
            workflowIdConflictPolicy: 'USE_EXISTING',
          });
          return workflowId;
        } finally {
          await connection.close().catch(() => undefined);
        }
      } catch {
        await sleep(1000);
      }
    }
  }

  const started = Date.now();
  const results: { round: number; ok: boolean; result?: RoundResult; error?: string; seconds: number }[] = [];
  const deadline = started + Number(opt['timeout-min']) * 60_000;
  let next = 1;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next <= N) {
        const round = next++;
        const t0 = Date.now();
        const workflowId = await startRound(round);
        log(`round ${round} started`);
        try {
          const result = await Promise.race([
            resultOf(workflowId),
            sleep(Math.max(0, deadline - Date.now())).then(() => {
              throw new Error('timed out (waiting for an operator?)');
            }),
          ]);
          results.push({ round, ok: true, result, seconds: (Date.now() - t0) / 1000 });
          log(`round ${round} completed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        } catch (e) {
          results.push({ round, ok: false, error: (e as Error).message, seconds: (Date.now() - t0) / 1000 });
          log(`round ${round} FAILED: ${(e as Error).message}`);
        }
      }
    }),
  );
  done = true;
  await chaos;
  for (const w of workers) if (w) await killGroup(w, 'SIGTERM');
  await server.stop?.();

  // --- what ran, and what is in the store -------------------------------------------------------------
  const launches = readLaunches(launchLog);
  const byKey = new Map<string, Launch[]>();
  for (const l of launches) {
    const k = `${l.stage}${l.shard === null ? '' : `[${l.shard}]`}@${l.key}`;
    byKey.set(k, [...(byKey.get(k) ?? []), l]);
  }
  const histogram: Record<string, number> = {};
  const unexplained: Record<string, number> = {};
  for (const [k, ls] of byKey) {
    histogram[ls.length] = (histogram[ls.length] ?? 0) + 1;
    const killed = ls.filter((l) => killedPids.has(l.pid)).length;
    const extra = ls.length - 1 - killed;
    if (extra > 0) unexplained[k] = extra;
  }
  const store = openStore({});
  let manifestsValid = 0;
  const manifestsInvalid: string[] = [];
  let filesChecked = 0;
  const lost: string[] = [];
  const stagesRoot = `${root}/stages/`;
  for (const stage of stages) {
    const listing = await store.list(`${stagesRoot}${stage}/`);
    const keys = new Set(listing.map((o) => o.uri.slice(`${stagesRoot}${stage}/`.length).split('/')[0]!));
    for (const key of keys) {
      const prefix = `${stagesRoot}${stage}/${key}/`;
      if (!listing.some((o) => o.uri === `${prefix}manifest.json`)) continue; // never finished: nothing promised
      const check = await checkManifest(store, prefix, { stage, key });
      if (!check.valid) {
        manifestsInvalid.push(check.reason);
        continue;
      }
      manifestsValid++;
      for (const f of check.manifest.files) {
        filesChecked++;
        const head = await store.head(`${prefix}${f.path}`);
        if (!head || head.size !== f.size) lost.push(`${prefix}${f.path}`);
      }
    }
  }
  // attempts timed out (heartbeats lost) while their job ran: the job went on, its retry reused what it published
  const timedOutKept = Array.from({ length: WORKERS }, (_, i) => path.join(dir, `worker-${i}.log`))
    .filter((f) => fs.existsSync(f))
    .reduce(
      (n, f) => n + (fs.readFileSync(f, 'utf8').match(/this attempt was timed out while its job runs/g) ?? []).length,
      0,
    );
  const completed = results.filter((r) => r.ok).length;
  const report = {
    command: `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim(),
    options: {
      rounds: N,
      concurrency: CONCURRENCY,
      workers: WORKERS,
      killEveryS: KILL_EVERY_S,
      serverEvery: SERVER_EVERY,
      heartbeatS: HEARTBEAT_S,
      jobSleepS: JOB_SLEEP_S,
      seed: Number(opt.seed),
    },
    wallSeconds: (Date.now() - started) / 1000,
    rounds: {
      started: results.length,
      completed,
      failed: results.filter((r) => !r.ok).map((r) => `${r.round}: ${r.error}`),
    },
    kills: { workers: workerKills, server: serverKills, jobsKilledWithTheirWorker: killedPids.size, workerSelfExits },
    jobs: {
      launched: launches.length,
      stageKeys: byKey.size,
      launchesPerKeyHistogram: histogram,
      unexplainedExtraLaunches: unexplained,
      timedOutAttemptsWhoseJobWentOn: timedOutKept,
    },
    artifacts: { manifestsValid, manifestsInvalid, filesChecked, lost },
    events,
  };
  fs.writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report, null, 2));
  console.log(`\nsoak ${id}: ${completed}/${N} rounds completed in ${report.wallSeconds.toFixed(0)} s`);
  console.log(
    `kills: ${workerKills} worker, ${serverKills} Temporal server; ${killedPids.size} jobs died with their worker; ` +
      `${workerSelfExits} worker exit(s) on their own, restarted`,
  );
  console.log(
    `jobs: ${launches.length} launched for ${byKey.size} stage keys; launches per key ${JSON.stringify(histogram)}; ` +
      `beyond the killed attempt: ${Object.keys(unexplained).length ? JSON.stringify(unexplained) : 'none'}; ` +
      `${timedOutKept} attempt(s) timed out on heartbeat while their job ran (the job went on)`,
  );
  console.log(
    `artifacts: ${manifestsValid} valid manifests, ${manifestsInvalid.length} invalid, ${filesChecked} files checked, ${lost.length} lost`,
  );
  console.log(`report: ${path.join(dir, 'report.json')}`);
  const ok =
    completed === N && Object.keys(unexplained).length === 0 && manifestsInvalid.length === 0 && lost.length === 0;
  process.exit(ok ? 0 : 1);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(2);
});
