/**
 * Waiting out an artifact-store outage inside the failed activity attempt, instead of spending Temporal's
 * retries on it. A stage attempt that fails while its store is unreachable (the S3 server restarting, a network
 * partition) would otherwise be retried 5 s and 10 s later, still against a dead store, and end at the operator
 * desk after three attempts, though nothing but time was needed. So: when an attempt fails with a retryable
 * error, the activity probes the store; while the probe fails it keeps heartbeating and waits (with a capped
 * backoff, up to a budget), and only then lets the failure go to Temporal's retry, which now meets a live store.
 * The probe is a listing of the artifact root, the least an attempt needs.
 */
import { Context } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArtifactStore } from './artifacts/store.js';

export interface OutageWait {
  /** How long to wait for the store at most (default TAO_STORE_OUTAGE_WAIT_SECONDS, else 600 s). */
  budgetMs?: number;
  /** First pause between probes; doubles up to 15 s or half the heartbeat timeout, whichever is shorter. */
  firstPauseMs?: number;
}

export function outageBudgetMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.TAO_STORE_OUTAGE_WAIT_SECONDS ?? 600);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : 600_000;
}

async function reachable(store: ArtifactStore, root: string): Promise<boolean> {
  try {
    await store.list(root.replace(/\/*$/, '/') + '.tao-preflight/');
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns once the store answers (or the budget is spent, or the activity is cancelled). Returns how long it
 * waited, 0 when the store answered at once.
 */
export async function waitForStore(store: ArtifactStore, root: string, o: OutageWait = {}): Promise<number> {
  if (await reachable(store, root)) return 0;
  const ctx = Context.current();
  const started = Date.now();
  const budget = o.budgetMs ?? outageBudgetMs();
  // A pause longer than the heartbeat timeout would time the attempt out while it waits (and a timed-out
  // attempt stops waiting): heartbeat at least twice per timeout, whatever the backoff has grown to.
  const maxPause = Math.min(15_000, Math.max(100, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 2));
  let pause = Math.min(o.firstPauseMs ?? 1000, maxPause);
  while (Date.now() - started < budget && !ctx.cancellationSignal.aborted) {
    ctx.heartbeat({
      phase: 'waiting',
      message: `artifact store unreachable (${root}); waiting for it before retrying`,
    });
    await sleep(pause, undefined, { signal: ctx.cancellationSignal }).catch(() => undefined);
    if (await reachable(store, root)) break;
    pause = Math.min(pause * 2, maxPause);
  }
  return Date.now() - started;
}
