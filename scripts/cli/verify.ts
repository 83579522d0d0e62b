/**
 * `tao verify <workflow-id | artifacts URI | stage URI>`: re-hashes every file of the published stages (issue
 * 11, item 4). Reuse checks sizes and the sha256 of small files only (activities/artifacts/manifest.ts); this
 * reads everything, models included. A damaged stage has its manifest quarantined, so the next round that
 * needs it runs it again (`--no-quarantine` only reports).
 */
import { openStore } from '../../activities/artifacts/open-store.js';
import { resolveUri } from '../../activities/artifacts/store.js';
import { stagePrefixOf, verifyAll, verifyStage, type StageVerdict } from '../../activities/artifacts/verify.js';
import type { RoundResult } from '../../common/types.js';

export interface VerifyOptions {
  quarantine: boolean;
  /** S3 endpoint settings of the store (the spec's `artifacts.s3`); credentials come from the environment. */
  s3?: { endpoint?: string; region?: string; forcePathStyle?: boolean };
}

/** Whether the argument names store objects rather than a workflow. */
export const isStoreTarget = (target: string) => /^(file:|s3:\/\/)/.test(target);

/** The stage prefixes a finished round's result points at (its artifacts and models). */
export function stagesOfResult(result: RoundResult): string[] {
  const uris = [
    ...Object.values(result.artifacts).flatMap((v) =>
      typeof v === 'object' && !Array.isArray(v) ? Object.values(v) : v,
    ),
    result.tunedModel,
    result.baseModel,
  ];
  return [...new Set(uris.map((u) => stagePrefixOf(u)?.prefix).filter((p): p is string => !!p))].sort();
}

export async function verifyStores(targets: string[], options: VerifyOptions): Promise<StageVerdict[]> {
  const store = openStore({ s3: options.s3 as never });
  const out: StageVerdict[] = [];
  for (const raw of targets) {
    const target = resolveUri(raw);
    if (stagePrefixOf(target)) out.push(await verifyStage(store, target, options));
    else out.push(...(await verifyAll(store, target, options)));
  }
  return out;
}

export function renderVerdicts(verdicts: StageVerdict[]): string {
  const lines = verdicts.map((v) =>
    v.ok
      ? `ok       ${v.prefix} (${v.files} files, ${v.bytes} bytes)`
      : `DAMAGED  ${v.prefix}: ${v.problem}${v.quarantined ? `\n         manifest quarantined: ${v.quarantined}` : ''}`,
  );
  const bad = verdicts.filter((v) => !v.ok).length;
  lines.push(`${verdicts.length} stage(s) verified, ${bad} damaged`);
  return lines.join('\n');
}
