/**
 * Run-spec validation shared by the CLI and the workflow: every problem as `path: reason`.
 *
 * Two layers: the zod schema (shapes, ranges, defaults) and the checks across fields that a schema cannot
 * express: scorer names unique and known to `tasks`, scorer params the Python scorer would refuse
 * (common/scorer-params.ts), reference scorers only in the evaluation, and the explicit choice of the
 * evaluation's scorers. What needs the data itself (references present, enough evaluation prompts for the
 * gate rule) is checked by `tao validate` on the files it can read and by the prepare stage before any other
 * job runs.
 */
import type { z } from 'zod';
import type { FlywheelSpec } from './flywheel-spec.js';
import { needsReference, RunSpecSchema, type RunSpec } from './run-spec.js';
import { scorerParamsProblems } from './scorer-params.js';

export type Validation = { ok: true; spec: RunSpec } | { ok: false; errors: string[] };

export interface ValidateOptions {
  /**
   * Accept specs written before the evaluation had its own scorers (no `evaluation.scorers` and no
   * `evaluation.reuseTrainingScorers`): rounds started then are replayed with their original input.
   */
  legacy?: boolean;
}

/** The scorer name of the weighted combination in scores.jsonl (jobs/src/tao_jobs/scorers/plan.py). */
const COMBINED = 'combined';

export function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

export function validateRunSpec(input: unknown, options: ValidateOptions = {}): Validation {
  const parsed = RunSpecSchema.safeParse(input);
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error.issues) };
  const errors = checkRunSpec(parsed.data, options);
  return errors.length ? { ok: false, errors } : { ok: true, spec: parsed.data };
}

type Scorer = RunSpec['scoring']['scorers'][number];

function checkScorers(at: string, scorers: Scorer[], tasks: Record<string, string[]>, training: boolean): string[] {
  const errors: string[] = [];
  const first = new Map<string, number>();
  scorers.forEach((s, i) => {
    const here = `${at}.scorers.${i}`;
    if (s.name === COMBINED) errors.push(`${here}.name: '${COMBINED}' is reserved for the weighted combination`);
    const seen = first.get(s.name);
    if (seen !== undefined) errors.push(`${here}.name: duplicate scorer name '${s.name}' (also ${at}.scorers.${seen})`);
    else first.set(s.name, i);
    if (training && needsReference(s)) {
      errors.push(
        `${here}.type: '${s.type}'${s.type === 'python' ? ' with reference: true' : ''} compares answers with ` +
          'references, which training prompts never carry: use it in evaluation.scorers',
      );
    }
    errors.push(...scorerParamsProblems(s.type, s.params).map((p) => `${here}.params.${p}`));
  });
  for (const [task, names] of Object.entries(tasks)) {
    names.forEach((n, j) => {
      if (!first.has(n)) {
        errors.push(`${at}.tasks.${task}.${j}: unknown scorer name '${n}' (known: ${[...first.keys()].join(', ')})`);
      }
    });
  }
  return errors;
}

/** The checks across fields (see the module comment); empty when the parsed spec is consistent. */
export function checkRunSpec(spec: RunSpec, options: ValidateOptions = {}): string[] {
  const errors = checkScorers('scoring', spec.scoring.scorers, spec.scoring.tasks, true);
  const ev = spec.evaluation;
  if (ev.scorers && ev.reuseTrainingScorers) {
    errors.push(
      'evaluation.reuseTrainingScorers: the evaluation has its own scorers; remove this or evaluation.scorers',
    );
  } else if (!ev.scorers && ev.reuseTrainingScorers === undefined && !options.legacy) {
    errors.push(
      "evaluation.scorers: set the evaluation's own scorers (e.g. exact-match against references), or set " +
        'evaluation.reuseTrainingScorers to true to judge the round by the reward it was trained on (not independent)',
    );
  } else if (!ev.scorers && ev.reuseTrainingScorers === false) {
    errors.push('evaluation.scorers: required when evaluation.reuseTrainingScorers is false');
  }
  if (ev.tasks && !ev.scorers) errors.push('evaluation.tasks: per-task scorer lists need evaluation.scorers');
  if (ev.scorers) errors.push(...checkScorers('evaluation', ev.scorers, ev.tasks ?? {}, false));
  errors.push(...checkBaselines(spec));
  return errors;
}

/** The baseline arms' settings; whether the training prompts carry references is checked on the data. */
function checkBaselines(spec: RunSpec): string[] {
  const labelled = spec.baselines?.labelledFineTuning;
  if (!labelled) return [];
  const field = 'baselines.labelledFineTuning.targetTemplate';
  const templates: [string, string][] =
    typeof labelled.targetTemplate === 'string'
      ? [[field, labelled.targetTemplate]]
      : Object.entries(labelled.targetTemplate).map(([task, t]) => [`${field}.${task}`, t]);
  return templates
    .filter(([, t]) => !t.includes('{reference}'))
    .map(([at]) => `${at}: must contain "{reference}" (where the training prompt's reference goes)`);
}

/**
 * Where the evaluation needs references, as the prepare stage takes it (`params.references`): task (or "*" for
 * every task without its own list) → the field of the first reference scorer that scores it, or null for a
 * listed task whose scorers need none. Empty when no evaluation scorer needs references.
 */
export function referenceNeeds(spec: RunSpec): Record<string, string | null> {
  const scorers = spec.evaluation.scorers;
  if (!scorers) return {};
  const field = (names: string[] | null) => {
    const i = scorers.findIndex((s) => (names === null || names.includes(s.name)) && needsReference(s));
    return i < 0 ? null : `evaluation.scorers.${i}`;
  };
  const out: Record<string, string | null> = {};
  const all = field(null);
  if (all) out['*'] = all;
  for (const [task, names] of Object.entries(spec.evaluation.tasks ?? {})) out[task] = field(names);
  return Object.values(out).some((v) => v !== null) ? out : {};
}

/**
 * The flywheel's template checked as the rounds it will start (the same cross-field checks as a round's spec),
 * problems under `template.`, so a bad template fails the flywheel (and `tao schedule create`) before any log is
 * read, not at its first child round.
 */
export function checkFlywheelTemplate(spec: FlywheelSpec): string[] {
  const asRound = {
    ...spec.template,
    kind: 'Round',
    name: spec.name,
    round: 1,
    // the prompts are what the flywheel collects; any valid URI stands for them here
    prompts: { uri: 'file:flywheel-prompts.jsonl', onInvalid: spec.template.prompts.onInvalid },
  };
  const checked = validateRunSpec(asRound);
  return checked.ok ? [] : checked.errors.map((e) => `template.${e}`);
}
