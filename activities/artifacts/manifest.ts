/**
 * Reading stage manifests (written last by the stage job; docs/design.md#rule-8). A manifest that parses, names the
 * expected stage and key, and whose listed files all exist with the recorded sizes means "done": the stage
 * is not run again. Anything less means "not done", and the reason is reported.
 */
import { z } from 'zod';
import { joinUri, type ArtifactStore } from './store.js';

const outputRef = z.union([z.string(), z.array(z.string())]);

export const ManifestSchema = z.object({
  schema: z.literal('tao.manifest/v1'),
  stage: z.string(),
  key: z.string().nullable().optional(),
  outputs: z.record(z.string(), outputRef),
  files: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string(), records: z.number().optional() })),
  records: z.object({ in: z.number(), out: z.number() }),
  metrics: z.record(z.string(), z.unknown()),
  producer: z.object({ name: z.string(), version: z.string(), codeVersion: z.string().nullable().optional() }),
  timings: z.object({ startedAt: z.number(), finishedAt: z.number(), durationS: z.number() }),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export type ManifestCheck = { valid: true; manifest: Manifest } | { valid: false; reason: string };

export async function checkManifest(
  store: ArtifactStore,
  prefix: string,
  expect: { stage: string; key: string },
): Promise<ManifestCheck> {
  const uri = joinUri(prefix, 'manifest.json');
  const raw = await store.get(uri);
  if (!raw) return { valid: false, reason: `${uri}: not found` };
  let parsed;
  try {
    parsed = ManifestSchema.safeParse(JSON.parse(raw.toString('utf8')));
  } catch (e) {
    return { valid: false, reason: `${uri}: not JSON (${(e as Error).message})` };
  }
  if (!parsed.success) return { valid: false, reason: `${uri}: ${parsed.error.issues[0]?.message}` };
  const m = parsed.data;
  if (m.stage !== expect.stage || (m.key ?? '') !== expect.key) {
    return { valid: false, reason: `${uri}: written for ${m.stage}/${m.key}, expected ${expect.stage}/${expect.key}` };
  }
  // Sizes are checked for every file (cheap HEADs); sha256 is recorded for audits, not re-hashed here.
  const listed = new Map((await store.list(prefix)).map((o) => [o.uri, o.size]));
  for (const f of m.files) {
    const size = listed.get(joinUri(prefix, f.path));
    if (size === undefined) return { valid: false, reason: `${uri}: listed file ${f.path} is missing` };
    if (size !== f.size)
      return { valid: false, reason: `${uri}: ${f.path} has ${size} bytes, manifest says ${f.size}` };
  }
  return { valid: true, manifest: m };
}

/** Output refs of a manifest as absolute URIs (relative paths are under the prefix). */
export function resolveOutputs(prefix: string, outputs: Manifest['outputs']): Record<string, string | string[]> {
  const abs = (p: string) => (p.includes('://') ? p : joinUri(prefix, p));
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, Array.isArray(v) ? v.map(abs) : abs(v)]));
}
