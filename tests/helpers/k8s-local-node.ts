/**
 * A "local node" for tests: plays the kubelet for ONE node of the local control plane (scripts/dev/k8s-dev.ts)
 * so that pods scheduled there really run, as local processes of this machine. kwok only moves pods through
 * their phases; with this node a pipeline of Jobs goes through the real job controller and scheduler AND runs
 * its container commands for real.
 *
 * What it does, like a kubelet would:
 * - registers a Node (without kwok's annotation, so kwok leaves it alone) and writes its status through the
 *   status subresource: Ready, capacity/allocatable, address 127.0.0.1, and the port of its own HTTPS server;
 * - watches the pods bound to it; for each new one runs the first container's `command + args` in its own
 *   process group with the container's environment (literal values, Secrets, ConfigMaps, the downward API's
 *   simple fields), then writes status Running; stdout and stderr go to a log file;
 * - when the process exits, writes phase Succeeded/Failed with `state.terminated` (exit code, reason, the
 *   termination message, or the log tail with FallbackToLogsOnError);
 * - when a pod is being deleted, SIGTERMs the process group, SIGKILLs it after the (capped) grace period and
 *   finishes the deletion with grace period 0;
 * - serves `GET /containerLogs/{namespace}/{pod}/{container}` (tailLines, limitBytes, follow), so pod logs
 *   work through the apiserver (`kubectl logs`, `readNamespacedPodLog`, the client's `Log`).
 *
 * Limits (a test harness, not a kubelet): no images (the command runs on this machine, `python` is the given
 * python), one container per pod (init and other containers are ignored), no volumes, no resource limits, no
 * probes, no restarts (restartPolicy is treated as Never), the working directory is a per-pod directory.
 */
import {
  ApiException,
  CoreV1Api,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type V1Container,
  type V1EnvVar,
  type V1Pod,
} from '@kubernetes/client-node';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOCAL_NODE_LABEL = { key: 'tao.dev/local-node', value: 'true' } as const;

const LOOPBACK = '127.0.0.1';
/** The kubelet's limits for termination messages (pkg/kubelet/container). */
const MAX_TERMINATION_MESSAGE_BYTES = 4096;
const FALLBACK_LOG_LINES = 80;
const FALLBACK_LOG_BYTES = 2048;
/** Pods wait this long between attempts to resolve env from missing Secrets/ConfigMaps. */
const CONFIG_RETRY_MS = 2000;
/** The kubelet accepts strategic merge patches for status; so does the apiserver for us. */
const STRATEGIC_MERGE = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

export interface LocalNodeOptions {
  kubeConfig: KubeConfig;
  /** Node name (default `tao-local-0`); a stale Node of that name is replaced. */
  name?: string;
  /** Runs container commands whose first word is `python` or `python3`. */
  python: string;
  /** Environment of every container (like an image's ENV): the pod's own env wins. */
  env?: Record<string, string>;
  /** Per-pod directories (log, termination message, working dir), the cert and a trace log go here. */
  workDir: string;
  gpus?: number;
  cpu?: string;
  memory?: string;
  /** Cap on the grace period between SIGTERM and SIGKILL when a pod is deleted (default 3000 ms). */
  maxGraceMs?: number;
}

/** One pod this node ran (or tried to). */
export interface LocalRun {
  namespace: string;
  pod: string;
  uid: string;
  /** Process (and process group) id; undefined until spawned, or if spawning failed. */
  pid?: number;
  /** Exit code as the kubelet reports it (128 + signal for a signal death); null while running. */
  exitCode: number | null;
  startedAt?: Date;
  endedAt?: Date;
  logFile: string;
}

export interface LocalNode {
  name: string;
  /** Put this in a pod's `nodeSelector` to run it here. */
  nodeSelector: Record<string, string>;
  /** Port of the log server the apiserver connects to. */
  port: number;
  runs(): LocalRun[];
  /** Kills what still runs, stops watching and serving, deletes the Node. */
  stop(): Promise<void>;
}

export async function startLocalNode(o: LocalNodeOptions): Promise<LocalNode> {
  const kubelet = new LocalKubelet(o);
  await kubelet.start();
  return {
    name: kubelet.name,
    nodeSelector: { 'kubernetes.io/hostname': kubelet.name },
    port: kubelet.port,
    runs: () => kubelet.runs(),
    stop: () => kubelet.stop(),
  };
}

/** A resolvable-later problem with a pod's env (missing Secret, ConfigMap or key): the pod waits, as on a kubelet. */
class ConfigError extends Error {}

interface PodRun {
  record: LocalRun;
  container: V1Container;
  /** When the pod was first seen (status.startTime). */
  acceptedAt: Date;
  terminationFile: string;
  dir: string;
  /** The process is gone (or will never start). */
  exited: boolean;
  /** Resolves once the final status is written (or the pod was abandoned). */
  done: Promise<void>;
  markDone(): void;
  /** The pod is being deleted (or is gone): do not start it, kill it if it runs. */
  deleting: boolean;
  /** Status writes of one pod go out in order. */
  writes: Promise<void>;
}

class LocalKubelet {
  readonly name: string;
  port = 0;
  private readonly core: CoreV1Api;
  private readonly pods = new Map<string, PodRun>(); // by uid, in the order first seen
  private readonly deletionsStarted = new Set<string>();
  private server?: https.Server;
  private watchAbort?: AbortController;
  private watching?: Promise<void>;
  private stopped = false;
  private readonly trace: string;

  constructor(private readonly o: LocalNodeOptions) {
    this.name = o.name ?? 'tao-local-0';
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.trace = path.join(o.workDir, 'local-node.log');
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.join(this.o.workDir, 'pods'), { recursive: true });
    this.port = await this.serveLogs();
    try {
      await this.registerNode();
      this.watching = this.watchPods();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  runs(): LocalRun[] {
    return [...this.pods.values()].map((r) => ({ ...r.record }));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchAbort?.abort();
    const alive = [...this.pods.values()].filter((r) => !r.exited);
    for (const run of alive) run.deleting = true;
    await Promise.all(alive.map((run) => this.killGracefully(run, 1000)));
    await this.watching;
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.core.deleteNode({ name: this.name }).catch(ignoreStatus(404));
    this.note('stopped');
  }

  // ---- the Node ----

  private async registerNode(): Promise<void> {
    const resources = {
      cpu: this.o.cpu ?? String(os.cpus().length),
      memory: this.o.memory ?? `${Math.floor(os.totalmem() / 2 ** 20)}Mi`,
      pods: '110',
      'nvidia.com/gpu': String(this.o.gpus ?? 8),
    };
    const body = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: this.name,
        labels: {
          [LOCAL_NODE_LABEL.key]: LOCAL_NODE_LABEL.value,
          'kubernetes.io/hostname': this.name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
        },
      },
      spec: {},
    };
    try {
      await this.core.createNode({ body });
    } catch (e) {
      if (!isStatus(e, 409)) throw e;
      // left behind by an interrupted run: start from a clean Node
      this.note(`replacing the existing Node ${this.name}`);
      await this.core.deleteNode({ name: this.name });
      await this.core.createNode({ body });
    }
    const now = timestamp(new Date());
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    // Status only through the status subresource, as a kubelet does (the main resource ignores it on update).
    await this.core.patchNodeStatus(
      {
        name: this.name,
        body: {
          status: {
            capacity: resources,
            allocatable: resources,
            conditions: [
              condition('Ready', 'True', 'KubeletReady', 'tao local node harness is posting ready status'),
              condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'no pressure'),
              condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'no pressure'),
              condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'no pressure'),
            ],
            // Only InternalIP: the apiserver's default preference would try a Hostname address first.
            addresses: [{ type: 'InternalIP', address: LOOPBACK }],
            daemonEndpoints: { kubeletEndpoint: { Port: this.port } },
            nodeInfo: {
              kubeletVersion: 'v0.0.0-tao-local',
              operatingSystem: 'linux',
              architecture: process.arch === 'x64' ? 'amd64' : process.arch,
            },
          },
        },
      },
      STRATEGIC_MERGE,
    );
    this.note(`node ${this.name} registered, log server on port ${this.port}`);
  }

  // ---- watching the pods bound to this node ----

  /** List, then watch from the list's resourceVersion; list again whenever the watch ends (timeout, 410, error). */
  private async watchPods(): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.name}`;
    while (!this.stopped) {
      try {
        const list = await this.core.listPodForAllNamespaces({ fieldSelector });
        const present = new Set(list.items.map((p) => p.metadata?.uid));
        for (const run of this.pods.values()) {
          if (!present.has(run.record.uid)) this.onPodGone(run.record.uid); // deleted while we were not watching
        }
        for (const pod of list.items) this.onPod(pod);
        await this.watchOnce(fieldSelector, list.metadata?.resourceVersion);
      } catch (e) {
        if (!this.stopped) this.note(`pod watch ended: ${errorText(e)}`);
        await sleep(500);
      }
    }
  }

  private watchOnce(fieldSelector: string, resourceVersion?: string): Promise<void> {
    return new Promise((resolve, reject) => {
      new Watch(this.o.kubeConfig)
        .watch(
          '/api/v1/pods',
          { fieldSelector, resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: V1Pod) => {
            if (type === 'ADDED' || type === 'MODIFIED') this.onPod(obj);
            else if (type === 'DELETED' && obj.metadata?.uid) this.onPodGone(obj.metadata.uid);
            // ERROR (e.g. 410 Gone): the server closes the stream next and we list again
          },
          (err: unknown) => (err ? reject(err) : resolve()),
        )
        .then((abort) => {
          this.watchAbort = abort;
          if (this.stopped) abort.abort();
        }, reject);
    });
  }

  private onPod(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid || this.stopped) return;
    if (pod.metadata?.deletionTimestamp) {
      void this.deletePod(pod);
      return;
    }
    const phase = pod.status?.phase;
    // Pods already Running without a process here were started by an earlier harness: left alone.
    if (this.pods.has(uid) || (phase && phase !== 'Pending')) return;
    void this.runPod(pod).catch((e: unknown) => this.note(`pod ${podKey(pod)}: ${errorText(e)}`));
  }

  /** The pod object is gone (force-deleted): nobody will read a status, just make sure nothing runs. */
  private onPodGone(uid: string): void {
    const run = this.pods.get(uid);
    if (!run || run.exited) return;
    run.deleting = true;
    void this.killGracefully(run, 0);
  }

  // ---- running a pod ----

  private async runPod(pod: V1Pod): Promise<void> {
    const container = pod.spec?.containers[0];
    if (!container) return;
    const run = this.track(pod, container);
    try {
      await this.startContainer(pod, container, run);
    } catch (e) {
      // an unexpected API error: fail the pod rather than leave it Pending with nobody looking at it
      await this.finish(run, { startError: errorText(e) });
    }
  }

  private async startContainer(pod: V1Pod, container: V1Container, run: PodRun): Promise<void> {
    const env = await this.waitForEnv(pod, container, run);
    if (!env || run.deleting || this.stopped) return this.abandon(run);

    const [file, ...args] = [...(container.command ?? []), ...(container.args ?? [])].map((s) => expandVars(s, env));
    if (!file) {
      return this.finish(run, { startError: 'no command: the local node has no images, so no entrypoints' });
    }
    if (run.deleting || this.stopped) return this.abandon(run);
    run.record.startedAt = new Date();
    this.spawnContainer(run, /^python3?$/.test(file) ? this.o.python : file, args, env);
    // Running only once the process exists (so a Running pod always has a pid in runs()); the exit's
    // status is queued behind this write, so it cannot be overtaken.
    await this.writeStatus(run, runningStatus(run));
  }

  private track(pod: V1Pod, container: V1Container): PodRun {
    const namespace = pod.metadata!.namespace ?? 'default';
    const name = pod.metadata!.name!;
    const uid = pod.metadata!.uid!;
    const dir = path.join(this.o.workDir, 'pods', `${namespace}_${name}_${uid.slice(0, 8)}`);
    fs.mkdirSync(dir, { recursive: true });
    let markDone = () => {};
    const done = new Promise<void>((resolve) => (markDone = resolve));
    const run: PodRun = {
      record: { namespace, pod: name, uid, exitCode: null, logFile: path.join(dir, 'container.log') },
      container,
      acceptedAt: new Date(),
      terminationFile: path.join(dir, 'termination-log'),
      dir,
      exited: false,
      done,
      markDone,
      deleting: false,
      writes: Promise.resolve(),
    };
    fs.writeFileSync(run.record.logFile, '');
    fs.writeFileSync(run.terminationFile, '');
    this.pods.set(uid, run);
    this.note(`pod ${namespace}/${name} accepted`);
    return run;
  }

  /** The container's env; while a Secret or ConfigMap is missing the pod waits (CreateContainerConfigError). */
  private async waitForEnv(pod: V1Pod, container: V1Container, run: PodRun): Promise<Record<string, string> | null> {
    for (;;) {
      if (run.deleting || this.stopped) return null;
      try {
        return {
          ...hostBasics(),
          HOSTNAME: run.record.pod,
          // tao_jobs dies with its parent (PR_SET_PDEATHSIG): a crashed test run leaves no orphans
          TAO_EXIT_WITH_PARENT: '1',
          ...this.o.env,
          ...(await this.containerEnv(pod, container)),
          // /dev/termination-log is not writable here: the job contract's reason goes to a per-pod file
          TAO_TERMINATION_LOG: run.terminationFile,
        };
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        await this.writeStatus(run, waitingStatus(run, 'CreateContainerConfigError', e.message));
        await sleep(CONFIG_RETRY_MS);
      }
    }
  }

  private async containerEnv(pod: V1Pod, c: V1Container): Promise<Record<string, string>> {
    const namespace = pod.metadata!.namespace ?? 'default';
    const env: Record<string, string> = {};
    for (const from of c.envFrom ?? []) {
      const ref = from.secretRef ?? from.configMapRef;
      const data = from.secretRef
        ? await this.secretData(namespace, ref?.name, ref?.optional)
        : await this.configMapData(namespace, ref?.name, ref?.optional);
      for (const [k, v] of Object.entries(data)) env[(from.prefix ?? '') + k] = v;
    }
    for (const e of c.env ?? []) {
      const value = await this.envValue(pod, c, e, env);
      if (value !== undefined) env[e.name] = value;
    }
    return env;
  }

  private async envValue(
    pod: V1Pod,
    c: V1Container,
    e: V1EnvVar,
    sofar: Record<string, string>,
  ): Promise<string | undefined> {
    const namespace = pod.metadata!.namespace ?? 'default';
    const from = e.valueFrom;
    if (!from) return expandVars(e.value ?? '', sofar);
    if (from.secretKeyRef) {
      const { name, key, optional } = from.secretKeyRef;
      return pick(await this.secretData(namespace, name, optional), key, `secret ${name}`, optional);
    }
    if (from.configMapKeyRef) {
      const { name, key, optional } = from.configMapKeyRef;
      return pick(await this.configMapData(namespace, name, optional), key, `configmap ${name}`, optional);
    }
    if (from.fieldRef) return fieldValue(pod, from.fieldRef.fieldPath);
    throw new ConfigError(`env ${e.name} of container ${c.name}: only secretKeyRef, configMapKeyRef, fieldRef here`);
  }

  private async secretData(namespace: string, name = '', optional = false): Promise<Record<string, string>> {
    try {
      const secret = await this.core.readNamespacedSecret({ name, namespace });
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries(secret.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
      return data;
    } catch (e) {
      if (!isStatus(e, 404)) throw e;
      if (optional) return {};
      throw new ConfigError(`secret "${name}" not found`);
    }
  }

  private async configMapData(namespace: string, name = '', optional = false): Promise<Record<string, string>> {
    try {
      return (await this.core.readNamespacedConfigMap({ name, namespace })).data ?? {};
    } catch (e) {
      if (!isStatus(e, 404)) throw e;
      if (optional) return {};
      throw new ConfigError(`configmap "${name}" not found`);
    }
  }

  private spawnContainer(run: PodRun, file: string, args: string[], env: Record<string, string>): void {
    const out = fs.openSync(run.record.logFile, 'a');
    try {
      // own process group (detached): kill(-pid) reaches everything the container started
      const child = spawn(file, args, { cwd: run.dir, env, detached: true, stdio: ['ignore', out, out] });
      run.record.pid = child.pid;
      child.once('error', (e) => void this.finish(run, { startError: e.message }));
      child.once('exit', (code, signal) => void this.finish(run, { code, signal }));
      this.note(
        `pod ${run.record.namespace}/${run.record.pod}: started pid ${child.pid}: ${JSON.stringify([file, ...args])}`,
      );
    } finally {
      fs.closeSync(out); // the child has its own copy
    }
  }

  /** The process exited (or never started): record it and write the terminal status. */
  private async finish(
    run: PodRun,
    end: { code?: number | null; signal?: NodeJS.Signals | null; startError?: string },
  ): Promise<void> {
    if (run.exited) return;
    run.exited = true;
    // When a container's main process ends, the runtime tears down the rest of it; do the same for the group.
    if (run.record.pid) signalGroup(run.record.pid, 'SIGKILL');
    const exitCode = end.startError !== undefined ? 128 : (end.code ?? 128 + (os.constants.signals[end.signal!] ?? 0));
    run.record.exitCode = exitCode;
    run.record.endedAt = new Date();
    const reason = end.startError !== undefined ? 'StartError' : exitCode === 0 ? 'Completed' : 'Error';
    const message = end.startError ?? readTerminationMessage(run, exitCode);
    this.note(`pod ${run.record.namespace}/${run.record.pod}: exit ${exitCode} (${end.signal ?? reason})`);
    await this.writeStatus(run, terminatedStatus(run, exitCode, reason, message));
    run.markDone();
  }

  /** Never started (deleted while waiting, or the harness stops): nothing to report. */
  private abandon(run: PodRun): void {
    run.exited = true;
    run.markDone();
  }

  // ---- deletion ----

  /**
   * A pod with a deletionTimestamp (the garbage collector after its Job was deleted, activeDeadlineSeconds, a
   * user): stop the process within the grace period, report how it ended, then delete with grace period 0, as
   * the kubelet does. Finalizers stay: the job controller removes its own.
   */
  private async deletePod(pod: V1Pod): Promise<void> {
    const uid = pod.metadata!.uid!;
    if (this.deletionsStarted.has(uid)) return;
    this.deletionsStarted.add(uid);
    const run = this.pods.get(uid);
    if (run) {
      run.deleting = true;
      const graceMs = Math.min((pod.metadata!.deletionGracePeriodSeconds ?? 30) * 1000, this.o.maxGraceMs ?? 3000);
      await this.killGracefully(run, graceMs);
    }
    const { name, namespace } = pod.metadata!;
    this.note(`pod ${namespace}/${name}: deleting (grace period 0)`);
    await this.core
      // grace period in the body: with a body, the apiserver ignores the query parameters
      .deleteNamespacedPod({
        name: name!,
        namespace: namespace!,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      })
      .catch(ignoreStatus(404, 409))
      .catch((e: unknown) => this.note(`pod ${namespace}/${name}: delete failed: ${errorText(e)}`));
  }

  /** SIGTERM the process group, SIGKILL after `graceMs`; resolves once the final status is written. */
  private async killGracefully(run: PodRun, graceMs: number): Promise<void> {
    const pid = run.record.pid;
    if (!run.exited && pid) {
      signalGroup(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
      const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
      await run.done;
      clearTimeout(timer);
    }
    await run.done;
  }

  // ---- pod status ----

  private writeStatus(run: PodRun, status: object): Promise<void> {
    const { pod: name, namespace } = run.record;
    run.writes = run.writes.then(() =>
      this.core
        .patchNamespacedPodStatus({ name, namespace, body: { status } }, STRATEGIC_MERGE)
        .then(() => undefined)
        .catch(ignoreStatus(404))
        .catch((e: unknown) => this.note(`pod ${namespace}/${name}: status write failed: ${errorText(e)}`)),
    );
    return run.writes;
  }

  // ---- logs, the kubelet's /containerLogs endpoint, reached through the apiserver ----

  private async serveLogs(): Promise<number> {
    const dir = path.join(this.o.workDir, 'pki');
    fs.mkdirSync(dir, { recursive: true });
    // A self-signed serving cert: the apiserver does not verify kubelet certs without --kubelet-certificate-authority.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'kubelet.key',
        '-out',
        'kubelet.crt',
        '-days',
        '7',
      ].concat(['-subj', `/CN=${this.name}`, '-addext', `subjectAltName=IP:${LOOPBACK},DNS:${this.name}`]),
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const server = https.createServer(
      { key: fs.readFileSync(path.join(dir, 'kubelet.key')), cert: fs.readFileSync(path.join(dir, 'kubelet.crt')) },
      (req, res) => {
        this.handleLogs(req, res).catch((e: unknown) => {
          if (!res.headersSent) reply(res, 500, errorText(e));
          else res.destroy();
        });
      },
    );
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  private async handleLogs(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://local');
    const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || !match) return reply(res, 404, 'the local node serves only GET /containerLogs');
    const [namespace, pod, container] = match.slice(1).map(decodeURIComponent) as [string, string, string];
    const run = [...this.pods.values()].reverse().find((r) => r.record.namespace === namespace && r.record.pod === pod);
    if (!run || run.container.name !== container) {
      return reply(res, 404, `container "${container}" in pod "${pod}" not found`);
    }
    if (!run.record.startedAt) {
      return reply(res, 400, `container "${container}" in pod "${pod}" is waiting to start: ContainerCreating`);
    }
    const tailLines = intParam(url, 'tailLines');
    let budget = intParam(url, 'limitBytes') ?? Infinity;
    const follow = url.searchParams.get('follow') === 'true';

    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.flushHeaders();
    const send = (chunk: Buffer) => {
      const part = chunk.subarray(0, Math.min(chunk.length, budget));
      budget -= part.length;
      if (part.length > 0) res.write(part);
    };
    const now = await fs.promises.readFile(run.record.logFile);
    let offset = tailLines === undefined ? 0 : tailOffset(now, tailLines);
    send(now.subarray(offset));
    offset = now.length;

    // follow: send what the file grows by until the process has exited and all of it was sent
    let gone = false;
    res.once('close', () => (gone = true));
    while (follow && !gone && budget > 0 && !this.stopped) {
      const exitedBefore = run.exited; // read after the exit: nothing more can come
      const chunk = await readFrom(run.record.logFile, offset);
      if (chunk.length > 0) {
        send(chunk);
        offset += chunk.length;
      } else if (exitedBefore) {
        break;
      } else {
        await sleep(100);
      }
    }
    res.end();
  }

  /** The harness's own trace (workDir/local-node.log), for when a test fails. */
  private note(line: string): void {
    try {
      fs.appendFileSync(this.trace, `${new Date().toISOString()} ${line}\n`);
    } catch {
      /* tracing is best effort */
    }
  }
}

// ---- pod status bodies (strategic merge patches of `status`) ----

/** metav1.Time: RFC 3339 in seconds. */
function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function podConditions(ready: boolean, reason?: string) {
  const now = timestamp(new Date());
  const condition = (type: string, status: boolean) => ({
    type,
    status: status ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: now,
    ...(reason ? { reason } : {}),
  });
  return [
    condition('PodReadyToStartContainers', true),
    condition('Initialized', true),
    condition('ContainersReady', ready),
    condition('Ready', ready),
  ];
}

function statusBase(run: PodRun) {
  return {
    hostIP: LOOPBACK,
    hostIPs: [{ ip: LOOPBACK }],
    podIP: LOOPBACK,
    podIPs: [{ ip: LOOPBACK }],
    startTime: timestamp(run.acceptedAt),
  };
}

function containerStatus(run: PodRun, state: object, running: boolean) {
  return {
    name: run.container.name,
    image: run.container.image ?? '',
    imageID: '',
    containerID: `tao-local://${run.record.uid}`,
    ready: running,
    started: running,
    restartCount: 0,
    state,
  };
}

function waitingStatus(run: PodRun, reason: string, message: string) {
  return {
    ...statusBase(run),
    phase: 'Pending',
    conditions: podConditions(false, 'ContainersNotReady'),
    containerStatuses: [containerStatus(run, { waiting: { reason, message } }, false)],
  };
}

function runningStatus(run: PodRun) {
  return {
    ...statusBase(run),
    phase: 'Running',
    conditions: podConditions(true),
    containerStatuses: [containerStatus(run, { running: { startedAt: timestamp(run.record.startedAt!) } }, true)],
  };
}

function terminatedStatus(run: PodRun, exitCode: number, reason: string, message: string) {
  const startedAt = timestamp(run.record.startedAt ?? run.acceptedAt);
  const terminated = { exitCode, reason, message, startedAt, finishedAt: timestamp(run.record.endedAt!) };
  return {
    ...statusBase(run),
    phase: exitCode === 0 ? 'Succeeded' : 'Failed',
    conditions: podConditions(false, 'PodCompleted'),
    containerStatuses: [containerStatus(run, { terminated }, false)],
  };
}

/**
 * The kubelet's rule: the termination-message file (≤ 4 KiB); if it is empty, the container failed and the
 * policy is FallbackToLogsOnError, the last 80 lines of the log, at most 2048 bytes.
 */
function readTerminationMessage(run: PodRun, exitCode: number): string {
  try {
    return terminationMessage(run, exitCode);
  } catch (e) {
    return `could not read the termination message: ${errorText(e)}`; // e.g. workDir removed under us
  }
}

function terminationMessage(run: PodRun, exitCode: number): string {
  const file = readHead(run.terminationFile, MAX_TERMINATION_MESSAGE_BYTES);
  if (file.length > 0 || exitCode === 0 || run.container.terminationMessagePolicy !== 'FallbackToLogsOnError') {
    return file.toString('utf8');
  }
  const log = fs.readFileSync(run.record.logFile);
  const tail = log.subarray(tailOffset(log, FALLBACK_LOG_LINES));
  return tail.subarray(Math.max(0, tail.length - FALLBACK_LOG_BYTES)).toString('utf8');
}

// ---- small helpers ----

/** Byte offset where the last `lines` lines of `buf` begin (a final newline does not start a new line). */
export function tailOffset(buf: Buffer, lines: number): number {
  if (lines <= 0) return buf.length;
  let pos = buf.length > 0 && buf[buf.length - 1] === 0x0a ? buf.length - 1 : buf.length;
  for (let n = 0; n < lines; n++) {
    if (pos <= 0) return 0;
    const newline = buf.lastIndexOf(0x0a, pos - 1);
    if (newline < 0) return 0;
    pos = newline;
  }
  return pos + 1;
}

/** The kubelet's `$(VAR)` expansion in command, args and env values; `$$` is a literal `$`. */
export function expandVars(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) =>
    name === undefined ? '$' : (env[name] ?? whole),
  );
}

/** The downward API's simple fields (`fieldRef`). */
function fieldValue(pod: V1Pod, fieldPath: string): string {
  const m = pod.metadata!;
  const simple: Record<string, string | undefined> = {
    'metadata.name': m.name,
    'metadata.namespace': m.namespace,
    'metadata.uid': m.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName,
    'status.hostIP': LOOPBACK,
    'status.podIP': LOOPBACK,
  };
  if (fieldPath in simple) return simple[fieldPath] ?? '';
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) return (keyed[1] === 'labels' ? m.labels : m.annotations)?.[keyed[2]!] ?? '';
  throw new ConfigError(`fieldRef ${fieldPath} is not supported by the local node`);
}

function pick(data: Record<string, string>, key: string, what: string, optional?: boolean): string | undefined {
  if (key in data) return data[key];
  if (optional) return undefined;
  throw new ConfigError(`couldn't find key ${key} in ${what}`);
}

/** What any process needs from the host; the container's env comes on top. */
function hostBasics(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[k]) env[k] = process.env[k]!;
  return env;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone */
  }
}

function readHead(file: string, max: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(max);
    return buf.subarray(0, fs.readSync(fd, buf, 0, max, 0));
  } finally {
    fs.closeSync(fd);
  }
}

async function readFrom(file: string, offset: number): Promise<Buffer> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
    const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function intParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  return v === null || v === '' ? undefined : Number.parseInt(v, 10);
}

function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain' });
  res.end(message);
}

function podKey(pod: V1Pod): string {
  return `${pod.metadata?.namespace}/${pod.metadata?.name}`;
}

function isStatus(e: unknown, ...codes: number[]): boolean {
  return e instanceof ApiException && codes.includes(e.code);
}

/** A `.catch` handler that swallows the given API status codes and rethrows anything else. */
function ignoreStatus(...codes: number[]) {
  return (e: unknown): undefined => {
    if (isStatus(e, ...codes)) return undefined;
    throw e;
  };
}

function errorText(e: unknown): string {
  if (e instanceof ApiException) return `HTTP ${e.code}: ${String(e.body).slice(0, 300)}`;
  return e instanceof Error ? e.message : String(e);
}
