/**
 * Reading stage manifests (docs/design.md#rule-8). A manifest that parses, names the expected stage and key,
 * and whose listed files all exist with the recorded sizes and (for small files) the recorded sha256 means
 * "done": the stage is not run again. Anything less means "not done", and the reason is reported; a manifest
 * that exists but fails these checks is quarantined by the caller (run-stage.ts) and the stage redone.
 */
import { z } from 'zod';
import { joinUri, type ArtifactStore } from './store.js';

const outputRef = z.union([z.string(), z.array(z.string())]);

export const ManifestSchema = z.object({
  schema: z.literal('tao.manifest/v1'),
  stage: z.string(),
  key: z.string().nullable().optional(),
  /** The attempt folder (`attempts/<id>/`) whose outputs this published manifest names (run-stage.ts). */
  attempt: z.string().optional(),
  outputs: z.record(z.string(), outputRef),
  files: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string(), records: z.number().optional() })),
  records: z.object({ in: z.number(), out: z.number() }),
  metrics: z.record(z.string(), z.unknown()),
  producer: z.object({ name: z.string(), version: z.string(), codeVersion: z.string().nullable().optional() }),
  timings: z.object({ startedAt: z.number(), finishedAt: z.number(), durationS: z.number() }),
});
export type Manifest = z.infer<typeof ManifestSchema>;

/**
 * `present`: a manifest.json exists at the prefix (so an invalid one is something to quarantine, not just
 * "not done yet").
 */
export type ManifestCheck =
  { valid: true; manifest: Manifest } | { valid: false; present: boolean; reason: string; raw?: Buffer };

/**
 * Files up to this size are re-hashed (sha256) on every reuse: cheap next to a stage's work. Larger files get
 * the size check only; `tao verify` and promotion hash everything (verify.ts).
 */
export const REUSE_HASH_MAX_BYTES = 8 * 1024 * 1024;

export interface CheckOptions {
  /** Re-hash files up to this many bytes (default REUSE_HASH_MAX_BYTES; Infinity: every file). */
  hashUpTo?: number;
}

export async function checkManifest(
  store: ArtifactStore,
  prefix: string,
  expect: { stage: string; key: string },
  options: CheckOptions = {},
): Promise<ManifestCheck> {
  const uri = joinUri(prefix, 'manifest.json');
  const raw = await store.get(uri);
  if (!raw) return { valid: false, present: false, reason: `${uri}: not found` };
  const bad = (reason: string): ManifestCheck => ({ valid: false, present: true, reason: `${uri}: ${reason}`, raw });
  let parsed;
  try {
    parsed = ManifestSchema.safeParse(JSON.parse(raw.toString('utf8')));
  } catch (e) {
    return bad(`not JSON (${(e as Error).message})`);
  }
  if (!parsed.success) return bad(`${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  const m = parsed.data;
  if (m.stage !== expect.stage || (m.key ?? '') !== expect.key) {
    return bad(`written for ${m.stage}/${m.key}, expected ${expect.stage}/${expect.key}`);
  }
  const problem = await verifyFiles(store, prefix, m, options.hashUpTo ?? REUSE_HASH_MAX_BYTES);
  if (problem) return bad(problem);
  return { valid: true, manifest: m };
}

/**
 * The first problem of a manifest's files, or null: every listed file must exist with its recorded size, and
 * each file of at most `hashUpTo` bytes must have its recorded sha256 (read whole; files above are checked by
 * size only).
 */
export async function verifyFiles(
  store: ArtifactStore,
  prefix: string,
  m: Pick<Manifest, 'files'>,
  hashUpTo: number,
): Promise<string | null> {
  const listed = new Map((await store.list(prefix)).map((o) => [o.uri, o.size]));
  for (const f of m.files) {
    const size = listed.get(joinUri(prefix, f.path));
    if (size === undefined) return `listed file ${f.path} is missing`;
    if (size !== f.size) return `${f.path} has ${size} bytes, manifest says ${f.size}`;
  }
  for (const f of m.files) {
    if (f.size > hashUpTo) continue;
    const sha = await store.sha256(joinUri(prefix, f.path));
    if (sha === null) return `listed file ${f.path} is missing`;
    if (sha !== f.sha256) return `${f.path} has sha256 ${sha}, manifest says ${f.sha256}`;
  }
  return null;
}

/** Output refs of a manifest as absolute URIs (relative paths are under the prefix). */
export function resolveOutputs(prefix: string, outputs: Manifest['outputs']): Record<string, string | string[]> {
  const abs = (p: string) => (p.includes('://') ? p : joinUri(prefix, p));
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, Array.isArray(v) ? v.map(abs) : abs(v)]));
}
