/**
 * Per-attempt staging and atomic publication of stage outputs (issue 11, items 2 and 3).
 *
 * A stage's prefix `stages/<stage>/<key>/` is shared by every run of that key (two rounds with the same spec,
 * a retried activity, two racing workers). Nothing but the published `manifest.json` is written there
 * directly:
 * - each run of the job writes into its own attempt folder `attempts/<id>/` (id = the job's generation-0 name,
 *   a function of workflow id, round, stage, shard and key: a retry of the same activity resumes in the same
 *   folder, another workflow gets another one): its stage spec, its logs, its outputs and its own
 *   `manifest.json` (written last by the job);
 * - publishing is one conditional create (`If-None-Match: *` on S3, `link()` on a file system) of the
 *   stage's `manifest.json`, naming the winning attempt's files (`attempts/<id>/…`): of any number of
 *   concurrent publishers exactly one wins; a loser deletes its attempt's outputs (keeping its logs) and
 *   returns the winner's manifest.
 * A manifest that exists but is invalid (not JSON, wrong schema or key, a file missing or of another size or
 * checksum) is moved to `quarantine/<time>-<id>/manifest.json` with the reason beside it and the work is redone.
 */
import { randomBytes } from 'node:crypto';
import type { Manifest } from './manifest.js';
import { joinUri, StoreError, type ArtifactStore } from './store.js';

export const ATTEMPTS = 'attempts';
export const QUARANTINE = 'quarantine';

export function attemptPrefix(output: string, attemptId: string): string {
  return joinUri(output, ATTEMPTS, attemptId) + '/';
}

/**
 * Moves an invalid `manifest.json` under `<prefix>quarantine/` (kept for inspection, with `reason.txt`). The
 * original is removed only if it still holds the bytes that were judged (a publisher may have replaced it
 * meanwhile; that window is one read long, the file store has no conditional delete). Returns the
 * quarantined copy's URI.
 */
export async function quarantine(store: ArtifactStore, prefix: string, raw: Buffer, reason: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const folder = joinUri(prefix, QUARANTINE, `${stamp}-${randomBytes(3).toString('hex')}`);
  const copy = joinUri(folder, 'manifest.json');
  await store.put(copy, raw);
  await store.put(joinUri(folder, 'reason.txt'), reason + '\n');
  const uri = joinUri(prefix, 'manifest.json');
  const now = await store.get(uri);
  if (now && now.equals(raw)) await store.delete(uri);
  return copy;
}

/** The published form of an attempt's manifest: the same files and outputs, named from the stage prefix. */
export function pointerManifest(m: Manifest, attemptId: string): Manifest {
  const at = `${ATTEMPTS}/${attemptId}/`;
  const rel = (p: string) => (p.includes('://') ? p : at + p);
  return {
    ...m,
    attempt: at,
    files: m.files.map((f) => ({ ...f, path: at + f.path })),
    outputs: Object.fromEntries(Object.entries(m.outputs).map(([k, v]) => [k, Array.isArray(v) ? v.map(rel) : rel(v)])),
  };
}

/** Publishes an attempt: true when this call created the stage's manifest, false when another attempt had. */
export async function publishAttempt(
  store: ArtifactStore,
  output: string,
  attemptId: string,
  m: Manifest,
): Promise<boolean> {
  try {
    await store.put(joinUri(output, 'manifest.json'), JSON.stringify(pointerManifest(m, attemptId), null, 2), {
      ifNoneMatch: true,
      contentType: 'application/json',
    });
    return true;
  } catch (e) {
    if (e instanceof StoreError && e.code === 'PreconditionFailed') return false;
    throw e;
  }
}

/** A losing attempt's cleanup: every object of its folder goes, except its logs (how it ran stays readable). */
export async function discardAttempt(store: ArtifactStore, attempt: string): Promise<number> {
  const logs = joinUri(attempt, 'logs') + '/';
  const objects = (await store.list(attempt)).filter((o) => !o.uri.startsWith(logs));
  for (const o of objects) await store.delete(o.uri);
  return objects.length;
}
