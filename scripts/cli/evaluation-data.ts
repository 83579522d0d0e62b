/**
 * `tao validate`'s checks of the evaluation data against what the spec's evaluation needs, for the files it
 * can read (file: URIs; s3:// inputs are left to the prepare stage, which runs the same checks first thing):
 * references where a reference scorer needs them, a benchmark with references, enough evaluation prompts for
 * the gate rule, and malformed `reference` values (with file and line, under `prompts.onInvalid`). The
 * held-out split is computed as prepare computes it (jobs/src/tao_jobs/stages/prepare.py `split_fraction`).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MIN_EVAL_PROMPTS, type RunSpec } from '../../common/run-spec.js';
import { referenceNeeds } from '../../common/validate.js';

interface Row {
  id: string;
  key: string;
  task: string | null;
  line: number;
  hasReference: boolean;
}

export interface EvaluationDataCheck {
  problems: string[];
  /** What was not checked and why (an s3:// input). */
  notes: string[];
}

const MAX_LISTED = 5;

function localPath(uri: string, cwd: string): string | null {
  if (uri.startsWith('file://')) return fileURLToPath(uri);
  if (uri.startsWith('file:')) return path.resolve(cwd, uri.slice('file:'.length));
  return null;
}

function referenceProblem(ref: unknown): string | null {
  const one = (v: unknown) => (typeof v === 'string' ? v.trim() !== '' : typeof v === 'number' && Number.isFinite(v));
  if (Array.isArray(ref)) {
    return ref.length && ref.every(one) ? null : 'must be a non-empty list of non-empty strings or finite numbers';
  }
  return one(ref) ? null : `must be a non-empty string, a finite number or a list of them, got ${typeof ref}`;
}

/** The valid rows of a prompt file (invalid lines are prepare's to report), and malformed references. */
function readRows(file: string, uri: string, malformed: string[]): Row[] {
  const rows: Row[] = [];
  const ids = new Set<string>();
  const keys = new Set<string>();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (!text.trim()) return;
      let r: Record<string, unknown>;
      try {
        r = JSON.parse(text);
      } catch {
        return;
      }
      if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !r.id.trim()) return;
      const messages = typeof r.prompt === 'string' ? [{ role: 'user', content: r.prompt }] : r.messages;
      if (!Array.isArray(messages)) return;
      if ('reference' in r) {
        const why = referenceProblem(r.reference);
        if (why) {
          malformed.push(`${uri}:${i + 1}: reference: ${why}`);
          return;
        }
      }
      const key = JSON.stringify(messages.map((m: { role?: unknown; content?: unknown }) => [m?.role, m?.content]));
      if (ids.has(r.id) || keys.has(key)) return; // prepare keeps the first of each id and each content
      ids.add(r.id);
      keys.add(key);
      const task = typeof r.task === 'string' && r.task ? r.task : null;
      rows.push({ id: r.id, key, task, line: i + 1, hasReference: 'reference' in r });
    });
  return rows;
}

/** prepare's `unit_hash(seed, prompt_id)`: a stable value in [0, 1) from sha256. */
function unitHash(seed: number, id: string): number {
  const digest = createHash('sha256').update(`${seed}\x1f${id}`).digest();
  return Number(digest.readBigUInt64BE(0)) / 2 ** 64;
}

function heldOutByFraction(rows: Row[], fraction: number, seed: number): Row[] {
  if (rows.length < 2) return [];
  const ranked = [...rows].sort((a, b) => unitHash(seed, a.id) - unitHash(seed, b.id));
  const n = Math.min(Math.max(ranked.filter((r) => unitHash(seed, r.id) < fraction).length, 1), ranked.length - 1);
  return ranked.slice(0, n);
}

export function checkEvaluationData(spec: RunSpec, cwd = process.cwd()): EvaluationDataCheck {
  const out: EvaluationDataCheck = { problems: [], notes: [] };
  const ev = spec.evaluation;
  const sources = { prompts: spec.prompts.uri, heldOut: ev.heldOutUri, benchmark: ev.benchmarkUri };
  const malformed: string[] = [];
  const rows: Partial<Record<keyof typeof sources, Row[]>> = {};
  for (const [name, uri] of Object.entries(sources) as [keyof typeof sources, string | undefined][]) {
    if (!uri || (name === 'prompts' && ev.heldOutUri && !spec.baselines?.labelledFineTuning)) continue;
    const file = localPath(uri, cwd);
    if (!file) {
      out.notes.push(`${uri}: not read here (the prepare stage checks it before any other job runs)`);
      return out;
    }
    try {
      rows[name] = readRows(file, uri, malformed);
    } catch (e) {
      out.problems.push(`${uri}: cannot read (${(e as Error).message})`);
      return out;
    }
  }
  if (malformed.length && spec.prompts.onInvalid === 'fail') {
    const more = malformed.length > MAX_LISTED ? ` (and ${malformed.length - MAX_LISTED} more)` : '';
    out.problems.push(...malformed.slice(0, MAX_LISTED).map((m, i) => (i === MAX_LISTED - 1 ? m + more : m)));
  }
  const held = rows.heldOut ?? heldOutByFraction(rows.prompts ?? [], ev.heldOutFraction ?? 0, ev.seed);
  const bench = rows.benchmark ?? [];
  if (ev.benchmarkUri && bench.length && !bench.some((r) => r.hasReference)) {
    out.problems.push(
      `evaluation.benchmarkUri: ${ev.benchmarkUri} has no references: a benchmark is scored against the gold ` +
        "answers its rows carry in 'reference'",
    );
  }
  const needs = referenceNeeds(spec);
  const fieldOf = (task: string | null) => (task !== null && task in needs ? needs[task] : needs['*']) ?? null;
  const byField = new Map<string, Row[]>();
  for (const r of [...held, ...bench]) {
    const field = fieldOf(r.task);
    if (field) byField.set(field, [...(byField.get(field) ?? []), r]);
  }
  let usable = held.length + bench.length;
  for (const [field, scored] of byField) {
    const missing = scored.filter((r) => !r.hasReference);
    if (missing.length === scored.length) {
      out.problems.push(
        `${field}: a reference scorer, but none of the ${scored.length} evaluation prompt(s) it scores carries a 'reference'`,
      );
    } else if (missing.length && spec.prompts.onInvalid === 'fail') {
      out.problems.push(
        `${field}: ${missing.length} evaluation prompt(s) without a reference (set prompts.onInvalid to 'skip' ` +
          `to leave them out), first at line ${missing[0]!.line}`,
      );
    }
    usable -= missing.length;
  }
  out.problems.push(...labelledProblems(spec, rows.prompts ?? [], held, bench));
  const need = MIN_EVAL_PROMPTS[spec.gate.rule];
  const unusable = held.length + bench.length - usable;
  if (usable < need) {
    out.problems.push(
      `gate.rule: '${spec.gate.rule}' needs at least ${need} evaluation prompts, the evaluation set has ${usable} ` +
        `(${held.length} held out + ${bench.length} benchmark${unusable ? `, ${unusable} of them without the reference their scorer needs` : ''}): ` +
        'add prompts, raise evaluation.heldOutFraction, add a benchmark, or choose a rule that needs fewer',
    );
  }
  return out;
}

/** The labelled baseline needs the training prompts' references (prepare's labelled mode checks the same). */
function labelledProblems(spec: RunSpec, prompts: Row[], held: Row[], bench: Row[]): string[] {
  const arm = spec.baselines?.labelledFineTuning;
  if (!arm || !prompts.length) return [];
  const field = 'baselines.labelledFineTuning';
  const out = new Set([...held, ...bench].flatMap((r) => [`id:${r.id}`, `key:${r.key}`]));
  const train = prompts.filter((r) => !out.has(`id:${r.id}`) && !out.has(`key:${r.key}`));
  const missing = train.filter((r) => !r.hasReference);
  if (train.length && missing.length === train.length) {
    return [
      `${field}: none of the ${train.length} training prompt(s) carries a 'reference' (${spec.prompts.uri}): the ` +
        'labelled baseline trains on them; add references or remove the arm',
    ];
  }
  if (missing.length && arm.missingReferences === 'fail') {
    return [
      `${field}: ${missing.length} of ${train.length} training prompt(s) without a 'reference', first at ` +
        `${spec.prompts.uri}:${missing[0]!.line} (set ${field}.missingReferences to 'skip' to leave them out of the arm)`,
    ];
  }
  return [];
}
