/**
 * Supervising many Kubernetes Jobs from one worker (issue 4, item 8): ONE `KubernetesExecutor` (one shared
 * watch on Jobs, one on pods) against a naive supervisor with one poll loop per Job (GET the Job + LIST its
 * pods every second, like the executor's first version), on the same real control plane (etcd,
 * kube-apiserver, job controller, scheduler, kwok fake GPU nodes; scripts/dev/k8s-dev.ts).
 *
 * Each of N lanes (default 500) runs two stages in sequence, like a round would: Job A, then Job B created as
 * soon as A's `run()` resolves. kwok keeps every pod Running for `--run-seconds` (default 30) so that the N
 * A-Jobs really run at the same time. Pod logs are not streamed (`streamLogs: false`): kwok pods have no
 * kubelet, so there is no log to read.
 *
 * Each supervisor runs in a child process of its own (clean CPU and memory figures), one after the other,
 * with a cleanup in between (Jobs deleted, pods gone). Measured per supervisor:
 * - worker CPU: `process.cpuUsage()` of the child over the supervision window (first Job created → last lane
 *   done), as % of one core; peak RSS and heap (sampled every 250 ms); event-loop utilisation and delay;
 * - API requests per minute: counted by the worker itself (per verb), and read from the apiserver's own
 *   `/metrics` (`apiserver_request_total`) before and after: the supervisor's share (jobs and pods, namespace
 *   scope, the verbs the supervisor uses) and every component's total; open WATCH requests
 *   (`apiserver_longrunning_requests`) sampled during the run;
 * - transition latency: B's creation (the POST returned) minus (a) the moment the supervisor saw A complete,
 *   (b) A's `Complete` condition `lastTransitionTime`, (c) A's pod `terminated.finishedAt` (both second
 *   resolution, so 0-1 s too high; (c) includes the job controller's own delay);
 * - the control plane's CPU per process (/proc), for context: it shares the machine with the worker.
 *
 * kube-controller-manager runs with `--kube-api-qps 200` by default here (`--kcm-qps 20` is its own default,
 * under which the job controller, not the supervisor, sets the pace at a few Jobs per second).
 *
 *   npm run bench:k8s [-- --jobs 50] [--run-seconds 30] [--poll-ms 1000] [--kcm-qps 200] [--base-port 45400] [--keep]
 *
 * Results: a Markdown table on stdout (and test-output/bench/k8s-supervision.md), JSON in
 * test-output/bench/k8s-supervision.json. See docs/benchmarks.md.
 */
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  type RequestContext,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openStore } from '../activities/artifacts/open-store.js';
import type { JobOutcome, RunContext, StageJob } from '../activities/executors/executor.js';
import { classify, DEFAULT_GRACE } from '../activities/executors/kubernetes/classify.js';
import { buildJob, type StageTemplate } from '../activities/executors/kubernetes/job-template.js';
import { KubernetesExecutor } from '../activities/executors/kubernetes/kubernetes-executor.js';
import { jobName } from '../activities/job-name.js';
import { startK8sDev, tempK8sDir } from '..//scripts/dev/k8s-dev.js';

const SELF = fileURLToPath(import.meta.url);
const VARIANTS = ['watch', 'poll'] as const;
type Variant = (typeof VARIANTS)[number];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const num = (name: string, dflt: number) => {
  const v = Number(arg(name) ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
};

// ---------------------------------------------------------------------------------------------------------
// Worker side (child process): the supervisor under test, with its own measurements.

/** Counts every request this process makes to the apiserver, by Kubernetes verb and resource. */
class CountingKubeConfig extends KubeConfig {
  readonly counts: Record<string, number> = {};
  private count(method: string, url: string, watch: boolean) {
    const u = new URL(url, 'https://x');
    const parts = u.pathname.split('/').filter(Boolean);
    const ns = parts.indexOf('namespaces');
    const rest = ns >= 0 ? parts.slice(ns + 2) : parts.slice(-2);
    const resource = rest[0] ?? '?';
    let verb = method.toUpperCase();
    if (verb === 'GET')
      verb = watch || u.searchParams.get('watch') === 'true' ? 'WATCH' : rest.length > 1 ? 'GET' : 'LIST';
    const key = `${verb} ${resource}`;
    this.counts[key] = (this.counts[key] ?? 0) + 1;
  }
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    this.count(String(context.getHttpMethod()), context.getUrl(), false);
    return super.applySecurityAuthentication(context);
  }
  /** Used by `Watch` (the only caller here: logs are off). The URL is not passed: counted as a watch. */
  override async applyToFetchOptions(opts: https.RequestOptions) {
    this.count('GET', '/watch?watch=true', true);
    return super.applyToFetchOptions(opts);
  }
}

interface Supervisor {
  run(job: StageJob, ctx: RunContext): Promise<JobOutcome>;
  readonly timeline: { name: string; createdAt: number; finishedAt?: number }[];
  close(): Promise<void>;
}

/**
 * The naive supervisor: one loop per Job, GET the Job and LIST its pods every `pollMs`, classify (the same
 * `classify` as the executor), until the Job is finished. What the executor's first version did (minus the
 * log tail read at the end, which a kwok pod cannot serve).
 */
class PollingSupervisor implements Supervisor {
  readonly timeline: { name: string; createdAt: number; finishedAt?: number }[] = [];
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly template: StageTemplate,
    private readonly pollMs: number,
  ) {
    this.batch = kc.makeApiClient(BatchV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }
  async run(job: StageJob, ctx: RunContext): Promise<JobOutcome> {
    const namespace = this.namespace;
    const owner = job.owner!;
    await this.batch.createNamespacedJob({ namespace, body: buildJob(job, { namespace, ...owner }, this.template) });
    const entry: (typeof this.timeline)[number] = { name: job.name, createdAt: Date.now() };
    this.timeline.push(entry);
    ctx.onProgress({ phase: 'starting', jobName: job.name, message: `created Job ${job.name}` });
    for (;;) {
      if (ctx.signal.aborted) {
        return { exitCode: null, signal: 'SIGTERM', reason: `stopped (${String(ctx.signal.reason)})`, logTail: [] };
      }
      const current = await this.batch.readNamespacedJob({ name: job.name, namespace });
      const pods = (
        await this.core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job.name}` })
      ).items;
      const state = classify(current, pods, new Date(), DEFAULT_GRACE);
      if (state.phase === 'succeeded' || state.phase === 'failed') {
        entry.finishedAt = Date.now();
        ctx.onProgress({ phase: state.phase, jobName: job.name });
        return state.phase === 'succeeded'
          ? { exitCode: 0, signal: null, reason: '', logTail: [], jobName: job.name }
          : { exitCode: state.exitCode ?? 1, signal: null, reason: state.reason, logTail: [], jobName: job.name };
      }
      ctx.onProgress({ phase: state.phase === 'running' ? 'running' : 'starting', jobName: job.name });
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }
  close() {
    return Promise.resolve();
  }
}

export interface LaneResult {
  lane: number;
  a: string;
  b: string;
  aCreatedAt?: number;
  aFinishedAt?: number;
  bCreatedAt?: number;
  bFinishedAt?: number;
  error?: string;
}

export interface WorkerResult {
  variant: Variant;
  jobs: number;
  windowStart: number;
  windowMs: number;
  cpu: { userMs: number; systemMs: number; pctOneCore: number };
  memory: {
    rssBeforeMb: number;
    peakRssMb: number;
    peakHeapUsedMb: number;
    peakHeapTotalMb: number;
    maxRssLifetimeMb: number;
  };
  eventLoop: { utilization: number; delayP50Ms: number; delayP99Ms: number; delayMaxMs: number };
  clientRequests: Record<string, number>;
  progressReports: number;
  watcherStats?: { lists: number; events: number; reconnects: number; watchStarts: number };
  lanes: LaneResult[];
  failures: string[];
}

async function worker(variant: Variant): Promise<void> {
  const jobs = num('jobs', 500);
  const namespace = arg('namespace')!;
  const pollMs = num('poll-ms', 1000);
  const deadlineMs = num('deadline-s', 900) * 1000;
  const kc = new CountingKubeConfig();
  kc.loadFromFile(arg('kubeconfig')!);
  const template: StageTemplate = { image: 'tao-jobs:bench', imagePullPolicy: 'Never' };
  const supervisor: Supervisor =
    variant === 'watch'
      ? new KubernetesExecutor({
          kubeConfig: kc,
          config: { namespace, templates: { default: template } },
          store: openStore({}),
          streamLogs: false, // kwok pods have no kubelet: nothing to stream
        })
      : new PollingSupervisor(kc, namespace, template, pollMs);

  const logRoot = 'file:///dev/null/k8s-supervision'; // never written: logs are off
  const stage = (lane: number, s: 'generate' | 'score'): StageJob => {
    const workflowId = `tao/bench-${variant}-lane-${lane}`;
    const id = { workflowId, round: 1, stage: s, shard: 0 };
    return {
      name: jobName({ ...id, generation: 0 }),
      nameForGeneration: (generation) => jobName({ ...id, generation }),
      stage: s,
      shard: 0,
      specUri: `${logRoot}/${lane}/${s}/stage-spec.json`,
      logUri: `${logRoot}/${lane}/${s}.log`,
      resources: { gpu: 1 },
      labels: { key: `${variant}-${lane}-${s}` },
      owner: { workflowId, runId: 'bench', round: 1, key: `${variant}-${lane}-${s}` },
    };
  };

  let progressReports = 0;
  // one signal per lane, as each activity has its own; the deadline aborts them all (runs then return)
  const aborts = Array.from({ length: jobs }, () => new AbortController());
  const ctxOf = (lane: number): RunContext => ({ onProgress: () => progressReports++, signal: aborts[lane]!.signal });
  const failures: string[] = [];
  const lanes: LaneResult[] = Array.from({ length: jobs }, (_, lane) => ({
    lane,
    a: stage(lane, 'generate').name,
    b: stage(lane, 'score').name,
  }));

  // measurements
  const mem = { peakRss: 0, peakHeapUsed: 0, peakHeapTotal: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    mem.peakRss = Math.max(mem.peakRss, m.rss);
    mem.peakHeapUsed = Math.max(mem.peakHeapUsed, m.heapUsed);
    mem.peakHeapTotal = Math.max(mem.peakHeapTotal, m.heapTotal);
  };
  const rssBefore = process.memoryUsage().rss;
  const sampler = setInterval(sample, 250);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const deadline = setTimeout(() => aborts.forEach((a) => a.abort('timeout')), deadlineMs);
  const progress = setInterval(() => {
    const created = supervisor.timeline.length;
    const finished = supervisor.timeline.filter((t) => t.finishedAt !== undefined).length;
    console.error(
      `[${variant}] ${((Date.now() - t0) / 1000).toFixed(0)} s: ${created} Jobs created, ${finished} seen finished, ` +
        `${created - finished} in flight; rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`,
    );
  }, 10_000);

  await Promise.all(
    lanes.map(async (lane) => {
      try {
        const a = await supervisor.run(stage(lane.lane, 'generate'), ctxOf(lane.lane));
        lane.aFinishedAt = supervisor.timeline.find((t) => t.name === lane.a)?.finishedAt;
        if (a.exitCode !== 0) throw new Error(`A ${lane.a}: ${a.reason}`);
        const b = await supervisor.run(stage(lane.lane, 'score'), ctxOf(lane.lane));
        if (b.exitCode !== 0) throw new Error(`B ${lane.b}: ${b.reason}`);
      } catch (e) {
        lane.error = e instanceof ApiException ? `HTTP ${e.code}: ${String(e.body).slice(0, 300)}` : String(e);
        failures.push(`lane ${lane.lane}: ${lane.error}`);
      }
    }),
  );
  const windowMs = Date.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  clearTimeout(deadline);
  clearInterval(progress);
  clearInterval(sampler);
  sample();
  delay.disable();
  const byName = new Map(supervisor.timeline.map((t) => [t.name, t]));
  for (const lane of lanes) {
    lane.aCreatedAt = byName.get(lane.a)?.createdAt;
    lane.aFinishedAt = byName.get(lane.a)?.finishedAt;
    lane.bCreatedAt = byName.get(lane.b)?.createdAt;
    lane.bFinishedAt = byName.get(lane.b)?.finishedAt;
  }
  const watcherStats = supervisor instanceof KubernetesExecutor ? { ...supervisor.watcher.stats } : undefined;
  await supervisor.close(); // ends the watches, so the apiserver counts them before the parent reads /metrics

  const mb = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  const result: WorkerResult = {
    variant,
    jobs,
    windowStart: t0,
    windowMs,
    cpu: {
      userMs: cpu.user / 1000,
      systemMs: cpu.system / 1000,
      pctOneCore: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
    },
    memory: {
      rssBeforeMb: mb(rssBefore),
      peakRssMb: mb(mem.peakRss),
      peakHeapUsedMb: mb(mem.peakHeapUsed),
      peakHeapTotalMb: mb(mem.peakHeapTotal),
      maxRssLifetimeMb: mb(process.resourceUsage().maxRSS * 1024),
    },
    eventLoop: {
      utilization: elu.utilization,
      delayP50Ms: delay.percentile(50) / 1e6,
      delayP99Ms: delay.percentile(99) / 1e6,
      delayMaxMs: delay.max / 1e6,
    },
    clientRequests: kc.counts,
    progressReports,
    watcherStats,
    lanes,
    failures,
  };
  fs.writeFileSync(arg('out')!, JSON.stringify(result));
}

// ---------------------------------------------------------------------------------------------------------
// Driver side: the control plane, the apiserver's metrics, the cleanup, the report.

type Sample = { labels: Record<string, string>; value: number };

function parseMetrics(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels: Record<string, string> = {};
    for (const m of line.slice(name.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    out.push({ labels, value: Number(line.slice(close + 1).trim()) });
  }
  return out;
}

/** The apiserver's own /metrics (its certificate is self-signed). */
function metrics(server: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${server}/metrics`,
      { rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` }, timeout: 30_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics: ${res.statusCode}`)),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET /metrics: timeout')));
    req.on('error', reject);
  });
}

const key = (l: Record<string, string>) => [l.verb, l.group, l.resource, l.subresource, l.scope, l.code].join('|');

/** The requests a Job supervisor makes (jobs and pods in one namespace); the control plane's own are excluded. */
function supervisorShare(l: Record<string, string>): boolean {
  if (l.resource !== 'jobs' && l.resource !== 'pods') return false;
  if (l.subresource !== '' || (l.scope !== 'namespace' && l.scope !== 'resource')) return false;
  if (l.resource === 'pods' && !['GET', 'LIST', 'WATCH'].includes(l.verb!)) return false; // job controller, GC
  return ['GET', 'LIST', 'WATCH', 'POST', 'PATCH', 'DELETE'].includes(l.verb!);
}

function requestDelta(before: string, after: string) {
  const b = new Map(parseMetrics(before, 'apiserver_request_total').map((s) => [key(s.labels), s.value]));
  const all: Record<string, number> = {};
  const supervisor: Record<string, number> = {};
  const supervisorDetail: Record<string, number> = {};
  let errors = 0;
  for (const s of parseMetrics(after, 'apiserver_request_total')) {
    const d = s.value - (b.get(key(s.labels)) ?? 0);
    if (d <= 0) continue;
    const verb = s.labels.verb!;
    all[verb] = (all[verb] ?? 0) + d;
    if (supervisorShare(s.labels)) {
      supervisor[verb] = (supervisor[verb] ?? 0) + d;
      const k = `${verb} ${s.labels.resource} ${s.labels.code}`;
      supervisorDetail[k] = (supervisorDetail[k] ?? 0) + d;
      if (!s.labels.code!.startsWith('2')) errors += d;
    }
  }
  return { all, supervisor, supervisorDetail, supervisorErrors: errors };
}

/** Open WATCH requests on jobs and pods in namespace scope (the controllers watch cluster-wide). */
function namespacedWatches(text: string): number {
  return parseMetrics(text, 'apiserver_longrunning_requests')
    .filter((s) => s.labels.verb === 'WATCH' && s.labels.scope === 'namespace')
    .filter((s) => s.labels.resource === 'jobs' || s.labels.resource === 'pods')
    .reduce((a, s) => a + s.value, 0);
}

const COMPONENTS = ['kube-apiserver', 'etcd', 'kube-controller-manager', 'kube-scheduler', 'kwok'] as const;

/** CPU seconds used so far by each control-plane process (pid files written by startK8sDev, /proc). */
function controlPlaneCpu(cpDir: string, basePort: number): Record<string, number> {
  const tick = 100; // USER_HZ on Linux
  const out: Record<string, number> = {};
  for (const name of COMPONENTS) {
    try {
      const pid = fs.readFileSync(path.join(cpDir, '..', `k8s-${basePort}-${name}.pid`), 'utf8').trim();
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[name] = (Number(fields[11]) + Number(fields[12])) / tick; // utime, stime
    } catch {
      /* not on Linux, or gone */
    }
  }
  return out;
}

function stats(values: number[]) {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, mean: NaN, p50: NaN, p95: NaN, max: NaN, min: NaN };
  const q = (p: number) => v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)]!;
  return {
    n: v.length,
    mean: v.reduce((a, b) => a + b, 0) / v.length,
    p50: q(50),
    p95: q(95),
    max: v.at(-1)!,
    min: v[0]!,
  };
}

/** Most supervised Jobs in flight at once (created, not yet seen finished). */
function peakInFlight(lanes: LaneResult[]): number {
  return peakOverlap(
    lanes.flatMap((l) => [
      [l.aCreatedAt ?? NaN, l.aFinishedAt ?? Infinity],
      [l.bCreatedAt ?? NaN, l.bFinishedAt ?? Infinity],
    ]),
  );
}

/** Most intervals [start, end) open at one moment (intervals without a start are skipped). */
function peakOverlap(intervals: [number, number][]): number {
  const ev: [number, number][] = [];
  for (const [start, end] of intervals) {
    if (!Number.isFinite(start)) continue;
    ev.push([start, 1]);
    ev.push([Number.isNaN(end) ? Infinity : end, -1]);
  }
  ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cur = 0;
  let peak = 0;
  for (const [, d] of ev) peak = Math.max(peak, (cur += d));
  return peak;
}

async function until(what: string, check: () => Promise<boolean>, ms: number) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function runChild(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SELF, ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`worker ${args[1]} exited ${code ?? signal}`)),
    );
  });
}

async function driver(): Promise<void> {
  const jobs = Math.round(num('jobs', 500));
  const runSeconds = num('run-seconds', 30);
  const pollMs = num('poll-ms', 1000);
  const basePort = Math.round(num('base-port', 45400));
  // the job controller's client limit: its default (20 QPS) makes the control plane the bottleneck at 500 Jobs
  const kcmQps = Math.round(num('kcm-qps', 200));
  const keep = process.argv.includes('--keep');
  const outDir = path.resolve('test-output', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = tempK8sDir();
  const cpDir = path.join(tmp, 'cp');
  // pods: 110 per node; 100 GPUs per node: one GPU per Job, at most `jobs` pods at once, one node to spare
  const gpuNodes = Math.ceil(jobs / 100) + 1;
  const date = new Date().toISOString();
  console.error(`starting a control plane on base port ${basePort} in ${cpDir} (${gpuNodes} fake nodes)`);
  const t0 = Date.now();
  const k8s = await startK8sDev({
    dir: cpDir,
    basePort,
    gpuNodes,
    gpusPerNode: 100,
    podRunSeconds: runSeconds,
    controllerManagerQps: kcmQps,
  });
  console.error(`control plane up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Ctrl-C: the control plane lives in a temp dir no later run looks at, so stop it now
  const onSignal = () => {
    console.error(`interrupted: stopping the control plane (files kept in ${tmp})`);
    void k8s.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let failed = true;
  const results: Record<string, unknown>[] = [];
  try {
    const core = k8s.kubeConfig.makeApiClient(CoreV1Api);
    const batch = k8s.kubeConfig.makeApiClient(BatchV1Api);
    for (const variant of VARIANTS) {
      const namespace = `bench-${variant}`;
      await core.createNamespace({ body: { metadata: { name: namespace } } });
      const out = path.join(tmp, `${variant}.json`);
      await new Promise((r) => setTimeout(r, 3000)); // let the control plane settle after the previous step
      const before = await metrics(k8s.server, k8s.token);
      const cpBefore = controlPlaneCpu(cpDir, basePort);
      let peakWatches = 0;
      let sampling = true;
      const watchSampler = (async () => {
        while (sampling) {
          await new Promise((r) => setTimeout(r, 5000));
          if (!sampling) break;
          peakWatches = Math.max(peakWatches, namespacedWatches(await metrics(k8s.server, k8s.token).catch(() => '')));
        }
      })();
      const wall0 = Date.now();
      console.error(`--- ${variant}: ${jobs} lanes × 2 Jobs in namespace ${namespace}`);
      try {
        await runChild([
          '--child',
          variant,
          '--kubeconfig',
          k8s.kubeconfigPath,
          '--namespace',
          namespace,
          '--jobs',
          String(jobs),
          '--poll-ms',
          String(pollMs),
          '--deadline-s',
          String(Math.max(600, runSeconds * 10)),
          '--out',
          out,
        ]);
      } finally {
        sampling = false;
        await watchSampler;
      }
      const wallMs = Date.now() - wall0;
      const after = await metrics(k8s.server, k8s.token);
      const cpAfter = controlPlaneCpu(cpDir, basePort);
      const w = JSON.parse(fs.readFileSync(out, 'utf8')) as WorkerResult;

      // A's Complete condition and the pods' start/end (second resolution), read after the measurement
      const listed = await batch.listNamespacedJob({ namespace });
      const byName = new Map<string, V1Job>(listed.items.map((j) => [j.metadata!.name!, j]));
      const pods = (await core.listNamespacedPod({ namespace })).items;
      const podOf = new Map<string, V1Pod>(pods.map((p) => [p.metadata!.labels!['batch.kubernetes.io/job-name']!, p]));
      const podEnd = (p: V1Pod | undefined) => p?.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt;
      const seen: number[] = [];
      const fromCondition: number[] = [];
      const fromPod: number[] = [];
      for (const lane of w.lanes) {
        if (lane.bCreatedAt === undefined) continue;
        if (lane.aFinishedAt !== undefined) seen.push(lane.bCreatedAt - lane.aFinishedAt);
        const complete = byName
          .get(lane.a)
          ?.status?.conditions?.find((c) => c.type === 'Complete' && c.status === 'True')?.lastTransitionTime;
        if (complete) fromCondition.push(lane.bCreatedAt - new Date(complete).getTime());
        const end = podEnd(podOf.get(lane.a));
        if (end) fromPod.push(lane.bCreatedAt - new Date(end).getTime());
      }
      // the apiserver drops a watch whose client does not read fast enough (its log says so)
      const forcedCloses = fs
        .readFileSync(k8s.logs['kube-apiserver']!, 'utf8')
        .split('\n')
        .filter((l) => l.includes('watcher close due to unresponsiveness') && l.includes(`/${namespace}/"`)).length;
      const podsRunning = peakOverlap(
        pods.map((p) => [new Date(p.status?.startTime ?? NaN).getTime(), new Date(podEnd(p) ?? NaN).getTime()]),
      );
      const lastACreated = Math.max(...w.lanes.map((l) => l.aCreatedAt ?? 0));
      const firstAFinished = Math.min(...w.lanes.map((l) => l.aFinishedAt ?? Infinity));
      const req = requestDelta(before, after);
      const minutes = w.windowMs / 60_000;
      const perMin = (r: Record<string, number>) =>
        Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round((v / minutes) * 10) / 10]));
      const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
      const cpCpu = Object.fromEntries(
        Object.entries(cpAfter).map(([k, v]) => [k, Math.round((v - (cpBefore[k] ?? 0)) * 10) / 10]),
      );
      results.push({
        variant,
        namespace,
        jobs,
        jobsCreated: w.lanes.filter((l) => l.aCreatedAt).length + w.lanes.filter((l) => l.bCreatedAt).length,
        lanesDone: w.lanes.filter((l) => l.bFinishedAt && !l.error).length,
        failures: w.failures,
        windowS: w.windowMs / 1000,
        childWallS: wallMs / 1000,
        peakInFlight: peakInFlight(w.lanes),
        allAConcurrent: lastACreated < firstAFinished,
        lastACreatedAfterS: (lastACreated - w.windowStart) / 1000,
        firstAFinishedAfterS: (firstAFinished - w.windowStart) / 1000,
        cpu: w.cpu,
        memory: w.memory,
        eventLoop: w.eventLoop,
        progressReports: w.progressReports,
        watcherStats: w.watcherStats,
        clientRequests: w.clientRequests,
        clientRequestsTotal: sum(w.clientRequests),
        clientRequestsPerMin: Math.round(sum(w.clientRequests) / minutes),
        apiserver: {
          supervisorByVerb: req.supervisor,
          supervisorDetail: req.supervisorDetail,
          supervisorErrors: req.supervisorErrors,
          supervisorPerMin: perMin(req.supervisor),
          supervisorTotalPerMin: Math.round(sum(req.supervisor) / minutes),
          allByVerb: req.all,
          allTotalPerMin: Math.round(sum(req.all) / minutes),
          peakNamespacedWatches: peakWatches,
          forcedWatchCloses: forcedCloses,
        },
        controlPlaneCpuSeconds: cpCpu,
        peakPodsRunning: podsRunning,
        latencyMs: { fromSeen: stats(seen), fromCondition: stats(fromCondition), fromPodSucceeded: stats(fromPod) },
      });
      console.error(
        `--- ${variant}: ${w.windowMs / 1000} s, cpu ${w.cpu.pctOneCore.toFixed(1)} %, ${w.failures.length} failures`,
      );

      // cleanup: delete the Jobs (Background: the garbage collector deletes the pods), wait for the pods to go
      const c0 = Date.now();
      await batch.deleteCollectionNamespacedJob({ namespace, propagationPolicy: 'Background' });
      await until(
        `the Jobs and pods of ${namespace} to be gone`,
        async () => {
          const [j, p] = await Promise.all([
            batch.listNamespacedJob({ namespace, limit: 1 }),
            core.listNamespacedPod({ namespace, limit: 1 }),
          ]);
          return j.items.length + p.items.length === 0;
        },
        600_000,
      );
      console.error(`--- cleanup of ${namespace}: ${((Date.now() - c0) / 1000).toFixed(0)} s`);
    }
    failed = false;
  } finally {
    await k8s.stop();
    if (keep || failed) console.error(`control plane files (logs) kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }

  const [watch, poll] = results as unknown as Report[];
  const report = {
    date,
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`,
    loadAverageAtEnd: os.loadavg(),
    params: { jobs, runSeconds, pollMs, basePort, gpuNodes, kcmQps },
    results,
    ratios: {
      cpu: watch!.cpu.pctOneCore / poll!.cpu.pctOneCore,
      requestsPerMinClient: watch!.clientRequestsPerMin / poll!.clientRequestsPerMin,
      requestsPerMinApiserver: watch!.apiserver.supervisorTotalPerMin / poll!.apiserver.supervisorTotalPerMin,
      latencyMeanFromSeen: watch!.latencyMs.fromSeen.mean / poll!.latencyMs.fromSeen.mean,
      latencyMeanFromCondition: watch!.latencyMs.fromCondition.mean / poll!.latencyMs.fromCondition.mean,
      latencyP95FromCondition: watch!.latencyMs.fromCondition.p95 / poll!.latencyMs.fromCondition.p95,
    },
  };
  const md = table(report, watch!, poll!);
  fs.writeFileSync(path.join(outDir, 'k8s-supervision.json'), JSON.stringify(report, null, 2) + '\n');
  fs.writeFileSync(path.join(outDir, 'k8s-supervision.md'), md);
  console.log(md);
}

type Report = {
  jobs: number;
  jobsCreated: number;
  lanesDone: number;
  failures: string[];
  windowS: number;
  peakInFlight: number;
  peakPodsRunning: number;
  allAConcurrent: boolean;
  lastACreatedAfterS: number;
  firstAFinishedAfterS: number;
  cpu: WorkerResult['cpu'];
  memory: WorkerResult['memory'];
  eventLoop: WorkerResult['eventLoop'];
  watcherStats?: WorkerResult['watcherStats'];
  clientRequests: Record<string, number>;
  clientRequestsPerMin: number;
  apiserver: {
    supervisorPerMin: Record<string, number>;
    supervisorTotalPerMin: number;
    supervisorErrors: number;
    forcedWatchCloses: number;
    allTotalPerMin: number;
    peakNamespacedWatches: number;
  };
  controlPlaneCpuSeconds: Record<string, number>;
  latencyMs: Record<'fromSeen' | 'fromCondition' | 'fromPodSucceeded', ReturnType<typeof stats>>;
};

function table(
  r: { date: string; machine: string; params: { jobs: number; runSeconds: number; pollMs: number; kcmQps: number } },
  w: Report,
  p: Report,
): string {
  const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '–');
  const ratio = (a: number, b: number) => (b ? f(a / b, 3) : '–');
  const lat = (s: ReturnType<typeof stats>) => `${f(s.mean)} / ${f(s.p50)} / ${f(s.p95)} / ${f(s.max)}`;
  const verbs = ['LIST', 'WATCH', 'GET', 'POST', 'PATCH', 'DELETE'];
  const perVerb = (x: Report) => verbs.map((v) => `${v} ${f(x.apiserver.supervisorPerMin[v] ?? 0, 1)}`).join(', ');
  const cp = (x: Report) =>
    Object.entries(x.controlPlaneCpuSeconds)
      .map(([k, v]) => `${k.replace('kube-', '')} ${f((v / x.windowS) * 100)}`)
      .join(', ');
  const rows: [string, string, string, string][] = [
    ['lanes done / Jobs created', `${w.lanesDone} / ${w.jobsCreated}`, `${p.lanesDone} / ${p.jobsCreated}`, ''],
    ['failures', String(w.failures.length), String(p.failures.length), ''],
    ['supervision window (s)', f(w.windowS, 1), f(p.windowS, 1), ratio(w.windowS, p.windowS)],
    [
      'Jobs in flight at peak (all A Jobs concurrent?)',
      `${w.peakInFlight} (${w.allAConcurrent ? 'yes' : 'no'})`,
      `${p.peakInFlight} (${p.allAConcurrent ? 'yes' : 'no'})`,
      '',
    ],
    ['pods Running at once (peak, 1 s resolution)', String(w.peakPodsRunning), String(p.peakPodsRunning), ''],
    [
      'worker CPU: % of one core over the window (CPU seconds)',
      `${f(w.cpu.pctOneCore, 1)} (${f((w.cpu.userMs + w.cpu.systemMs) / 1000, 1)})`,
      `${f(p.cpu.pctOneCore, 1)} (${f((p.cpu.userMs + p.cpu.systemMs) / 1000, 1)})`,
      `${ratio(w.cpu.pctOneCore, p.cpu.pctOneCore)} (${ratio(w.cpu.userMs + w.cpu.systemMs, p.cpu.userMs + p.cpu.systemMs)})`,
    ],
    [
      'worker peak RSS (MB; before the first Job)',
      `${f(w.memory.peakRssMb)} (${f(w.memory.rssBeforeMb)})`,
      `${f(p.memory.peakRssMb)} (${f(p.memory.rssBeforeMb)})`,
      ratio(w.memory.peakRssMb, p.memory.peakRssMb),
    ],
    [
      'worker peak heap used (MB)',
      f(w.memory.peakHeapUsedMb),
      f(p.memory.peakHeapUsedMb),
      ratio(w.memory.peakHeapUsedMb, p.memory.peakHeapUsedMb),
    ],
    [
      'event loop utilisation / delay p99 / max (ms)',
      `${f(w.eventLoop.utilization, 2)} / ${f(w.eventLoop.delayP99Ms)} / ${f(w.eventLoop.delayMaxMs)}`,
      `${f(p.eventLoop.utilization, 2)} / ${f(p.eventLoop.delayP99Ms)} / ${f(p.eventLoop.delayMaxMs)}`,
      '',
    ],
    [
      'supervisor API requests/min (apiserver metrics)',
      f(w.apiserver.supervisorTotalPerMin),
      f(p.apiserver.supervisorTotalPerMin),
      ratio(w.apiserver.supervisorTotalPerMin, p.apiserver.supervisorTotalPerMin),
    ],
    ['  by verb (/min)', perVerb(w), perVerb(p), ''],
    [
      'supervisor API requests/min (counted by the worker)',
      f(w.clientRequestsPerMin),
      f(p.clientRequestsPerMin),
      ratio(w.clientRequestsPerMin, p.clientRequestsPerMin),
    ],
    [
      'supervisor requests answered non-2xx',
      String(w.apiserver.supervisorErrors),
      String(p.apiserver.supervisorErrors),
      '',
    ],
    [
      'open watches (jobs+pods, namespace scope, peak)',
      String(w.apiserver.peakNamespacedWatches),
      String(p.apiserver.peakNamespacedWatches),
      '',
    ],
    [
      'watches the apiserver closed as unresponsive (its log)',
      String(w.apiserver.forcedWatchCloses),
      String(p.apiserver.forcedWatchCloses),
      '',
    ],
    [
      'watcher: lists / watch events / watch requests opened / reconnects after an error',
      w.watcherStats
        ? `${w.watcherStats.lists} / ${w.watcherStats.events} / ${w.watcherStats.watchStarts} / ${w.watcherStats.reconnects}`
        : '–',
      '–',
      '',
    ],
    [
      'all apiserver requests/min (every component)',
      f(w.apiserver.allTotalPerMin),
      f(p.apiserver.allTotalPerMin),
      ratio(w.apiserver.allTotalPerMin, p.apiserver.allTotalPerMin),
    ],
    ['control plane CPU (% of one core)', cp(w), cp(p), ''],
    [
      'transition A seen complete → B created (ms): mean / p50 / p95 / max',
      lat(w.latencyMs.fromSeen),
      lat(p.latencyMs.fromSeen),
      ratio(w.latencyMs.fromSeen.mean, p.latencyMs.fromSeen.mean),
    ],
    [
      "transition A's Complete condition → B created (ms, condition time truncated to 1 s): mean / p50 / p95 / max",
      lat(w.latencyMs.fromCondition),
      lat(p.latencyMs.fromCondition),
      ratio(w.latencyMs.fromCondition.mean, p.latencyMs.fromCondition.mean),
    ],
    [
      "A's pod Succeeded → B created (ms, pod time truncated to 1 s): mean / p50 / p95 / max",
      lat(w.latencyMs.fromPodSucceeded),
      lat(p.latencyMs.fromPodSucceeded),
      ratio(w.latencyMs.fromPodSucceeded.mean, p.latencyMs.fromPodSucceeded.mean),
    ],
  ];
  return [
    `### ${r.params.jobs} lanes × 2 Jobs, pods Running ${r.params.runSeconds} s, polling every ${r.params.pollMs} ms, ` +
      `kube-controller-manager at ${r.params.kcmQps} QPS (${r.date})`,
    '',
    `Machine: ${r.machine}`,
    '',
    '| | watch (KubernetesExecutor) | poll loop per Job | ratio watch / poll |',
    '| --- | --- | --- | --- |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
    '',
  ].join('\n');
}

const child = arg('child');
if (child) {
  if (!(VARIANTS as readonly string[]).includes(child)) throw new Error(`--child ${child}: watch or poll`);
  await worker(child as Variant);
  process.exit(0); // keep-alive sockets of the client would hold the process a while
} else {
  await driver();
}
