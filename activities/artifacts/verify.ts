/**
 * Full verification of published stage outputs (issue 11, item 4): every file listed by a stage's manifest
 * must exist with its size and sha256, however large (reuse hashes only small files: manifest.ts). Used by
 * `tao verify` and before promotion. A stage that fails has its manifest quarantined, so the next round that
 * needs it runs it again instead of reusing damaged data.
 */
import { checkManifest, type Manifest } from './manifest.js';
import { quarantine } from './publish.js';
import { joinUri, type ArtifactStore } from './store.js';

export interface StageVerdict {
  /** The stage prefix `…/stages/<stage>/<key>/`. */
  prefix: string;
  ok: boolean;
  problem?: string;
  files?: number;
  bytes?: number;
  /** Where the rejected manifest was moved. */
  quarantined?: string;
}

/** The first `/stages/<stage>/<key>/` of a URI: the stage folder (an output inside it may have any path). */
const STAGE_PREFIX = /^(.*?\/stages\/([^/]+)\/([^/]+)\/)/;

/** The stage prefix an output URI lies under (`…/stages/<stage>/<key>/`), or null for an outside URI. */
export function stagePrefixOf(uri: string): { prefix: string; stage: string; key: string } | null {
  const m = STAGE_PREFIX.exec(uri.endsWith('/') ? uri : uri + '/');
  return m ? { prefix: m[1]!, stage: m[2]!, key: m[3]! } : null;
}

/** Verifies one stage's published outputs in full; quarantines its manifest when they are damaged. */
export async function verifyStage(
  store: ArtifactStore,
  prefix: string,
  options: { quarantine?: boolean } = {},
): Promise<StageVerdict> {
  const where = stagePrefixOf(prefix);
  if (!where) return { prefix, ok: false, problem: `${prefix}: not a stages/<stage>/<key>/ prefix` };
  const check = await checkManifest(store, where.prefix, where, { hashUpTo: Infinity });
  if (check.valid) {
    const m: Manifest = check.manifest;
    return { prefix: where.prefix, ok: true, files: m.files.length, bytes: m.files.reduce((n, f) => n + f.size, 0) };
  }
  const verdict: StageVerdict = { prefix: where.prefix, ok: false, problem: check.reason };
  if (check.present && options.quarantine !== false) {
    verdict.quarantined = await quarantine(store, where.prefix, check.raw!, check.reason);
  }
  return verdict;
}

/** Every published stage under an artifacts root (or one stage prefix), verified in full. */
export async function verifyAll(
  store: ArtifactStore,
  root: string,
  options: { quarantine?: boolean } = {},
): Promise<StageVerdict[]> {
  const single = stagePrefixOf(root);
  if (single) return [await verifyStage(store, single.prefix, options)];
  const stages = joinUri(root, 'stages') + '/';
  const manifests = (await store.list(stages))
    .map((o) => o.uri.slice(stages.length))
    .filter((rel) => /^[^/]+\/[^/]+\/manifest\.json$/.test(rel));
  const out: StageVerdict[] = [];
  for (const rel of manifests) out.push(await verifyStage(store, stages + rel.replace(/manifest\.json$/, ''), options));
  return out;
}
