/** Run-spec validation shared by the CLI and the workflow: every problem as `path: reason`. */
import type { z } from 'zod';
import { RunSpecSchema, type RunSpec } from './run-spec.js';

export type Validation = { ok: true; spec: RunSpec } | { ok: false; errors: string[] };

export function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

export function validateRunSpec(input: unknown): Validation {
  const parsed = RunSpecSchema.safeParse(input);
  if (parsed.success) return { ok: true, spec: parsed.data };
  return { ok: false, errors: formatIssues(parsed.error.issues) };
}
