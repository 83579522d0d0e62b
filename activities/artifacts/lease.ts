/**
 * A lease on a stage key, so that one job runs for it however many runs want it at once (two workers racing a
 * stage, two rounds with the same spec under different workflow ids). Per-attempt staging (publish.ts) already
 * makes sure only one run's outputs are published; the lease makes sure only one run spends the GPU time.
 *
 * `stages/<stage>/<key>/lease.json` holds `{holder, expiresAt}`. It is taken with a conditional create
 * (`If-None-Match: *`), renewed and taken over with a compare-and-swap on the version read (`If-Match`), so two
 * runs can never both believe they hold it. The holder is the run's attempt id (the same for every attempt of one
 * activity, so a retry after a crash takes its own lease back at once); a lease whose holder stopped renewing
 * expires after its TTL and is taken over. Expiry compares wall clocks of different workers: keep the TTL well
 * above their skew (default 90 s, `TAO_STAGE_LEASE_SECONDS`).
 */
import { joinUri, StoreError, type ArtifactStore } from './store.js';

export const LEASE = 'lease.json';

export interface LeaseRecord {
  holder: string;
  expiresAt: number;
}

export type LeaseState = { held: true; etag: string } | { held: false; holder: string; expiresAt: number };

export function leaseTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.TAO_STAGE_LEASE_SECONDS ?? 90);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 90_000;
}

const body = (holder: string, ttlMs: number) =>
  JSON.stringify({ holder, expiresAt: Date.now() + ttlMs } satisfies LeaseRecord);

const precondition = (e: unknown) => e instanceof StoreError && e.code === 'PreconditionFailed';

/** Takes the lease of `output` for `holder` if it is free, expired or already `holder`'s. */
export async function acquireLease(
  store: ArtifactStore,
  output: string,
  holder: string,
  ttlMs: number,
): Promise<LeaseState> {
  const uri = joinUri(output, LEASE);
  try {
    const put = await store.put(uri, body(holder, ttlMs), { ifNoneMatch: true });
    return { held: true, etag: put.etag ?? '' };
  } catch (e) {
    if (!precondition(e)) throw e;
  }
  const [info, raw] = await Promise.all([store.head(uri), store.get(uri)]);
  if (!info || !raw) return acquireLease(store, output, holder, ttlMs); // released meanwhile: try again
  let current: LeaseRecord;
  try {
    current = JSON.parse(raw.toString('utf8')) as LeaseRecord;
  } catch {
    current = { holder: '(unreadable lease)', expiresAt: 0 }; // a torn or foreign file: take it over
  }
  if (current.holder !== holder && current.expiresAt > Date.now()) return { held: false, ...current };
  try {
    const put = await store.put(uri, body(holder, ttlMs), { ifMatch: info.etag ?? '' });
    return { held: true, etag: put.etag ?? '' };
  } catch (e) {
    if (!precondition(e)) throw e;
    return { held: false, holder: current.holder, expiresAt: current.expiresAt }; // someone else was faster
  }
}

/** Extends a held lease; returns the new version, or null when it was lost (taken over after it expired). */
export async function renewLease(
  store: ArtifactStore,
  output: string,
  holder: string,
  etag: string,
  ttlMs: number,
): Promise<string | null> {
  try {
    const put = await store.put(joinUri(output, LEASE), body(holder, ttlMs), { ifMatch: etag });
    return put.etag ?? '';
  } catch (e) {
    if (precondition(e)) return null;
    throw e;
  }
}

/** Gives the lease up (best effort: an unreleased lease only makes others wait for its expiry). */
export async function releaseLease(store: ArtifactStore, output: string, holder: string): Promise<void> {
  const uri = joinUri(output, LEASE);
  try {
    const raw = await store.get(uri);
    if (raw && (JSON.parse(raw.toString('utf8')) as LeaseRecord).holder === holder) await store.delete(uri);
  } catch {
    /* expiry covers it */
  }
}
