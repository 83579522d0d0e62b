/**
 * A lease on a stage key, so that one job runs for it however many runs want it at once (two workers racing a
 * stage, two rounds with the same spec under different workflow ids, a retried activity whose earlier attempt
 * still runs its job). Per-attempt staging (publish.ts) already makes sure only one run's outputs are
 * published; the lease makes sure only one run spends the GPU time.
 *
 * `stages/<stage>/<key>/lease.json` holds `{holder, expiresAt, owner}`. It is taken with a conditional create
 * (`If-None-Match: *`), renewed and taken over with a compare-and-swap on the version read (`If-Match`), so two
 * runs can never both believe they hold it. `holder` is the run's attempt id (its attempt folder, the same for
 * every activity attempt of one run); `owner` is the activity attempt holding it (a token of its own) and the
 * worker process it runs in (host, pid, process start time). A lease whose holder stopped renewing expires
 * after its TTL and is taken over. A later activity attempt of the same run (a Temporal retry) does not take
 * the lease from a live earlier attempt: that attempt may still be running its job (a heartbeat timeout does
 * not stop a job), so the retry waits for its manifest, as another run would (decision 0004). It takes it at
 * once when the earlier attempt's worker process is gone (a crash: its local jobs died with it; checked on the
 * same host only) or when the executor adopts running jobs by name (Kubernetes: adoption is the hand-over).
 * Expiry compares wall clocks of different workers: keep the TTL well above their skew (default 90 s,
 * `TAO_STAGE_LEASE_SECONDS`).
 */
import fs from 'node:fs';
import os from 'node:os';
import { joinUri, StoreError, type ArtifactStore } from './store.js';

export const LEASE = 'lease.json';

/** The activity attempt holding a lease, and the worker process it runs in. */
export interface LeaseOwner {
  token: string;
  /** Host name and boot id: a pid is only meaningful on the same host since the same boot. */
  host: string;
  pid: number;
  /** The process's start time (clock ticks since boot, Linux), so that a reused pid is not taken for it. */
  pidStart: string | null;
}

export interface LeaseRecord {
  holder: string;
  expiresAt: number;
  owner?: LeaseOwner;
}

export type LeaseState =
  { held: true; etag: string } | { held: false; holder: string; expiresAt: number; owner?: LeaseOwner };

export function leaseTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.TAO_STAGE_LEASE_SECONDS ?? 90);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 90_000;
}

const read = (file: string): string | null => {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
};

let host: string | undefined;
function hostId(): string {
  host ??= `${os.hostname()}/${read('/proc/sys/kernel/random/boot_id') ?? ''}`;
  return host;
}

/** Start time of a process (field 22 of /proc/<pid>/stat), or null where there is no /proc or no such pid. */
function processStart(pid: number): string | null {
  const stat = read(`/proc/${pid}/stat`);
  return stat === null ? null : (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null);
}

/** This process as the owner of a lease for the activity attempt `token`. */
export function leaseOwner(token: string): LeaseOwner {
  return { token, host: hostId(), pid: process.pid, pidStart: processStart(process.pid) };
}

/** True only when the owner's worker process is known to be gone: same host, and no such process (or a new one). */
export function ownerGone(owner: LeaseOwner | undefined): boolean {
  if (!owner || owner.host !== hostId()) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const start = processStart(owner.pid);
  return owner.pidStart !== null && start !== null && start !== owner.pidStart;
}

export interface AcquireOptions {
  /** The activity attempt asking (see LeaseOwner); without it any attempt of `holder` takes the lease. */
  owner?: LeaseOwner;
  /** Take the lease from a live earlier attempt of the same holder (an executor that adopts its running job). */
  takeOverOwn?: boolean;
}

const body = (holder: string, ttlMs: number, owner: LeaseOwner | undefined) =>
  JSON.stringify({ holder, expiresAt: Date.now() + ttlMs, ...(owner ? { owner } : {}) } satisfies LeaseRecord);

const precondition = (e: unknown) => e instanceof StoreError && e.code === 'PreconditionFailed';

/** May `holder`/`owner` take a lease that `current` holds and has not let expire? */
function mayTake(current: LeaseRecord, holder: string, o: AcquireOptions): boolean {
  if (current.holder !== holder) return false; // another run: wait for its manifest or the expiry
  if (!o.owner || !current.owner || current.owner.token === o.owner.token) return true; // this attempt's own
  return o.takeOverOwn === true || ownerGone(current.owner); // an earlier attempt of this run
}

/**
 * Takes the lease of `output` for `holder` if it is free, expired, already this attempt's, or an earlier
 * attempt's that may be taken (see AcquireOptions).
 */
export async function acquireLease(
  store: ArtifactStore,
  output: string,
  holder: string,
  ttlMs: number,
  options: AcquireOptions = {},
): Promise<LeaseState> {
  const uri = joinUri(output, LEASE);
  try {
    const put = await store.put(uri, body(holder, ttlMs, options.owner), { ifNoneMatch: true });
    return { held: true, etag: put.etag ?? '' };
  } catch (e) {
    if (!precondition(e)) throw e;
  }
  const [info, raw] = await Promise.all([store.head(uri), store.get(uri)]);
  if (!info || !raw) return acquireLease(store, output, holder, ttlMs, options); // released meanwhile: try again
  let current: LeaseRecord;
  try {
    current = JSON.parse(raw.toString('utf8')) as LeaseRecord;
  } catch {
    current = { holder: '(unreadable lease)', expiresAt: 0 }; // a torn or foreign file: take it over
  }
  if (current.expiresAt > Date.now() && !mayTake(current, holder, options)) return { held: false, ...current };
  try {
    const put = await store.put(uri, body(holder, ttlMs, options.owner), { ifMatch: info.etag ?? '' });
    return { held: true, etag: put.etag ?? '' };
  } catch (e) {
    if (!precondition(e)) throw e;
    return { held: false, holder: current.holder, expiresAt: current.expiresAt, owner: current.owner }; // someone else was faster
  }
}

/** Extends a held lease; returns the new version, or null when it was lost (taken over). */
export async function renewLease(
  store: ArtifactStore,
  output: string,
  holder: string,
  etag: string,
  ttlMs: number,
  owner?: LeaseOwner,
): Promise<string | null> {
  try {
    const put = await store.put(joinUri(output, LEASE), body(holder, ttlMs, owner), { ifMatch: etag });
    return put.etag ?? '';
  } catch (e) {
    if (precondition(e)) return null;
    throw e;
  }
}

/**
 * Gives the lease up if this holder (and, given, this attempt) still holds it: an attempt whose lease was
 * taken over must not delete its successor's. Best effort: an unreleased lease only makes others wait for its
 * expiry.
 */
export async function releaseLease(
  store: ArtifactStore,
  output: string,
  holder: string,
  owner?: LeaseOwner,
): Promise<void> {
  const uri = joinUri(output, LEASE);
  try {
    const raw = await store.get(uri);
    if (!raw) return;
    const current = JSON.parse(raw.toString('utf8')) as LeaseRecord;
    if (current.holder === holder && (!owner || current.owner?.token === owner.token)) await store.delete(uri);
  } catch {
    /* expiry covers it */
  }
}
