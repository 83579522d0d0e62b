/**
 * One watch on the stage Jobs of a namespace and one on their pods, shared by every stage activity of the
 * worker: O(1) watches however many Jobs run, instead of one poll loop per Job (docs/design.md#rule-2, issue 4).
 *
 * Built on the client's ListWatch (list, then watch from the list's resourceVersion, relist on 410 Gone),
 * plus what it leaves to its user:
 * - reconnect: ListWatch gives up after a watch error (apiserver restart, network blip); we start it again
 *   with a capped backoff, resuming from the last resourceVersion (or relisting when that is too old);
 * - resync: every `resyncMs` each subscriber is called again from the cache, so decisions that depend on
 *   time (pending grace, image-pull grace, pending timeout) are made even when no event arrives.
 */
import {
  BatchV1Api,
  CoreV1Api,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';

/** Pods carry their Job's name in this label (set by the job controller). */
const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

export interface JobWatcherOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Only these Jobs and pods are watched (the executor's `managed-by` label). */
  labelSelector: string;
  resyncMs?: number;
}

export interface WatchStats {
  /** Times a watch had to be started again after an error. */
  reconnects: number;
  /**
   * Watch requests opened (2 at start, then one per restart: after an error, or when the apiserver ends a
   * watch, e.g. its timeout or "watcher close due to unresponsiveness"; ListWatch resumes those itself).
   */
  watchStarts: number;
  /** Watch events received (Jobs and pods). */
  events: number;
  /** Full lists done (start, and relists after 410 Gone). */
  lists: number;
}

type Listener = () => void;

export class JobWatcher {
  readonly stats: WatchStats = { reconnects: 0, watchStarts: 0, events: 0, lists: 0 };
  private readonly jobs: ListWatch<V1Job>;
  private readonly pods: ListWatch<V1Pod>;
  /** job name → (pod name → pod), kept from pod events so a lookup is not a scan of every pod. */
  private readonly podsByJob = new Map<string, Map<string, V1Pod>>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private starting: Promise<void> | undefined;
  private resync: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: JobWatcherOptions) {
    const { kubeConfig, namespace, labelSelector } = options;
    const batch = kubeConfig.makeApiClient(BatchV1Api);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const watch = new Watch(kubeConfig);
    const counted =
      <T>(list: () => Promise<T>) =>
      () => {
        this.stats.lists++;
        return list();
      };
    this.jobs = new ListWatch<V1Job>(
      `/apis/batch/v1/namespaces/${namespace}/jobs`,
      watch,
      counted(() => batch.listNamespacedJob({ namespace, labelSelector })),
      false,
      labelSelector,
    );
    this.pods = new ListWatch<V1Pod>(
      `/api/v1/namespaces/${namespace}/pods`,
      watch,
      counted(() => core.listNamespacedPod({ namespace, labelSelector })),
      false,
      labelSelector,
    );
    for (const verb of ['add', 'update'] as const) {
      this.jobs.on(verb, (job) => this.changed(job.metadata?.name));
      this.pods.on(verb, (pod) => this.podChanged(pod, false));
    }
    this.jobs.on('delete', (job) => this.changed(job.metadata?.name));
    this.pods.on('delete', (pod) => this.podChanged(pod, true));
  }

  /** Starts both watches (idempotent); resolves once the first lists are in the cache. */
  start(): Promise<void> {
    this.starting ??= (async () => {
      await Promise.all([this.keepRunning(this.jobs, 'jobs'), this.keepRunning(this.pods, 'pods')]);
      this.resync = setInterval(() => this.notifyAll(), this.options.resyncMs ?? 10_000);
      this.resync.unref();
    })();
    return this.starting;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resync);
    await Promise.all([this.jobs.stop(), this.pods.stop()]);
  }

  job(name: string): V1Job | undefined {
    return this.jobs.get(name, this.options.namespace);
  }

  podsOf(name: string): V1Pod[] {
    return [...(this.podsByJob.get(name)?.values() ?? [])];
  }

  /** Calls `fn` whenever the Job or one of its pods changes, and at every resync. Returns the unsubscribe. */
  subscribe(name: string, fn: Listener): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(name);
    };
  }

  /** Number of Jobs being waited on (for heartbeats and the benchmark). */
  get watching(): number {
    return this.listeners.size;
  }

  /**
   * Starts a ListWatch and restarts it whenever it stops on an error. The first start is retried until it
   * lists successfully, so `start()` resolves with a filled cache.
   */
  private async keepRunning<T extends KubernetesObject>(lw: ListWatch<T>, what: string): Promise<void> {
    let delay = 500;
    let failed: unknown;
    let running = false; // past the first successful list: errors from here on are reconnected
    let timer: NodeJS.Timeout | undefined;
    // One pending retry at a time, with a capped exponential backoff (an apiserver that is down for a while
    // is not hammered); any event resets it.
    const reconnect = () => {
      if (this.stopped || !running || timer) return;
      this.stats.reconnects++;
      const wait = delay;
      delay = Math.min(delay * 2, 30_000);
      timer = setTimeout(() => {
        timer = undefined;
        if (!this.stopped) lw.start().catch(reconnect);
      }, wait);
      timer.unref();
    };
    lw.on('error', (err) => {
      failed = err;
      reconnect();
    });
    lw.on('change', () => {
      delay = 500;
    });
    lw.on('connect', () => {
      this.stats.watchStarts++;
    });
    for (let attempt = 1; ; attempt++) {
      failed = undefined;
      try {
        await lw.start();
      } catch (e) {
        failed = e;
      }
      if (failed === undefined) {
        running = true;
        return;
      }
      if (attempt >= 5) throw new Error(`watching ${what} in namespace ${this.options.namespace}: ${String(failed)}`);
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }

  private podChanged(pod: V1Pod, deleted: boolean) {
    this.stats.events++;
    const job = pod.metadata?.labels?.[JOB_NAME_LABEL];
    const name = pod.metadata?.name;
    if (!job || !name) return;
    let pods = this.podsByJob.get(job);
    if (deleted) {
      pods?.delete(name);
      if (pods?.size === 0) this.podsByJob.delete(job);
    } else {
      if (!pods) this.podsByJob.set(job, (pods = new Map()));
      pods.set(name, pod);
    }
    this.changed(job, false);
  }

  private changed(name: string | undefined, count = true) {
    if (count) this.stats.events++;
    if (!name) return;
    for (const fn of this.listeners.get(name) ?? []) fn();
  }

  private notifyAll() {
    for (const set of this.listeners.values()) for (const fn of set) fn();
  }
}
