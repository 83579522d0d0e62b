/**
 * The scorer params the Python scorers would refuse, found at validation instead of at the score stage (exit
 * 64 after generation has already run). Mirrors each type's constructor in jobs/src/tao_jobs/scorers/; the
 * shared cases in tests/fixtures/scorer-params/ run against both sides so the two cannot drift apart.
 * `judge`, `judge-with-reference` and `reward-model` params are left to their Python constructors (they
 * depend on endpoints and models that validation cannot reach). Pure and workflow-safe.
 */

type Params = Record<string, unknown>;

const REGEX_FLAGS = 'imsx';
const EXTRACTORS = ['last-number', 'boxed', 'regex'];
const NORMALIZERS = ['none', 'lower-strip'];
const SQL_KEYS = ['database', 'databaseField', 'timeoutS', 'dialect', 'vote', 'maxRows'];

const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Why a Python `re` pattern cannot compile, judged with JavaScript's RegExp after translating the Python-only
 * syntax that has a JavaScript equivalent (named groups, `\A`, `\Z`, leading inline flags). Patterns using
 * Python features JavaScript lacks (atomic groups, possessive quantifiers, conditionals, comments, verbose
 * mode) are not judged here (null): the scorer itself still refuses them at stage start if they are wrong.
 */
export function regexProblem(pattern: string, flags = ''): string | null {
  let p = pattern;
  let f = flags;
  const inline = /^\(\?([aiLmsux]+)\)/.exec(p);
  if (inline) {
    f += inline[1]!;
    p = p.slice(inline[0].length);
  }
  if (f.includes('x') || /\(\?[>(#]|[*+?}]\+/.test(p)) return null;
  p = p
    .replace(/\(\?P<(\w+)>/g, '(?<$1>')
    .replace(/\(\?P=(\w+)\)/g, '\\k<$1>')
    .replace(/\\A/g, '^')
    .replace(/\\Z/g, '$');
  try {
    new RegExp(p, [...new Set(f)].filter((c) => 'ims'.includes(c)).join(''));
    return null;
  } catch (e) {
    return (e as Error).message.replace(/^Invalid regular expression: /, '');
  }
}

function unknownKeys(params: Params, allowed: string[]): string[] {
  return Object.keys(params)
    .filter((k) => !allowed.includes(k))
    .map((k) => `${k}: unknown parameter (allowed: ${[...allowed].sort().join(', ')})`);
}

function choice(params: Params, key: string, choices: string[], problems: string[]): void {
  const v = params[key];
  if (v !== undefined && !choices.includes(v as string)) {
    problems.push(`${key}: must be one of ${choices.map(show).join(', ')}, got ${show(v)}`);
  }
}

function flagsProblem(params: Params, problems: string[]): string {
  const v = params.flags ?? '';
  if (typeof v !== 'string' || [...v].some((c) => !REGEX_FLAGS.includes(c))) {
    problems.push(`flags: must be a string of flag letters (i, m, s, x), got ${show(v)}`);
    return '';
  }
  return v;
}

function patternParams(params: Params, required: boolean, problems: string[]): void {
  const flags = flagsProblem(params, problems);
  const pattern = params.pattern;
  if (typeof pattern !== 'string' || !pattern) {
    if (required) problems.push('pattern: required, a non-empty regular expression');
    return;
  }
  const why = regexProblem(pattern, flags);
  if (why) problems.push(`pattern: not a valid regular expression (${why})`);
}

function extractor(params: Params, extractors: string[], defaultExtract: string, problems: string[]): void {
  choice(params, 'extract', extractors, problems);
  choice(params, 'normalize', NORMALIZERS, problems);
  if ((params.extract ?? defaultExtract) === 'regex') {
    patternParams(params, true, problems);
  } else {
    for (const key of ['pattern', 'flags'])
      if (key in params) problems.push(`${key}: only allowed with extract 'regex'`);
  }
}

function nonNegative(params: Params, key: string, problems: string[]): void {
  const v = params[key];
  if (v !== undefined && (!isNumber(v) || v < 0)) problems.push(`${key}: must be a number >= 0, got ${show(v)}`);
}

function sqlParams(params: Params, problems: string[]): void {
  const { database, databaseField } = params;
  if ((database === undefined) === (databaseField === undefined)) {
    problems.push('database: set exactly one of database and databaseField');
  }
  if (database !== undefined && (typeof database !== 'string' || !/^(file:|s3:\/\/)/.test(database))) {
    problems.push(`database: must be a file:// (or file:relative) or s3:// URI, got ${show(database)}`);
  }
  if (databaseField !== undefined && (typeof databaseField !== 'string' || !databaseField)) {
    problems.push("databaseField: must be a non-empty string (a key of the prompt's meta)");
  }
  const t = params.timeoutS;
  if (t !== undefined && (!isNumber(t) || t <= 0)) problems.push(`timeoutS: must be a number > 0, got ${show(t)}`);
  const m = params.maxRows;
  if (m !== undefined && (!isNumber(m) || !Number.isInteger(m) || m < 1)) {
    problems.push(`maxRows: must be an integer >= 1, got ${show(m)}`);
  }
  if (params.dialect !== undefined && params.dialect !== 'sqlite') {
    problems.push(`dialect: only 'sqlite' is supported (SQLite executes the queries), got ${show(params.dialect)}`);
  }
  if (params.vote !== undefined && typeof params.vote !== 'boolean') {
    problems.push(`vote: must be true or false, got ${show(params.vote)}`);
  }
}

const CHECKS: Record<string, (p: Params, problems: string[]) => string[]> = {
  regex: (p, problems) => {
    patternParams(p, true, problems);
    choice(p, 'mode', ['search', 'fullmatch', 'fraction'], problems);
    return ['pattern', 'mode', 'flags'];
  },
  length: (p, problems) => {
    nonNegative(p, 'min', problems);
    nonNegative(p, 'max', problems);
    if (p.min === undefined && p.max === undefined) problems.push('min: set min, max or both');
    if (isNumber(p.min) && isNumber(p.max) && p.min > p.max) problems.push(`min: must be <= max (${p.min} > ${p.max})`);
    choice(p, 'unit', ['chars', 'words'], problems);
    return ['min', 'max', 'unit'];
  },
  json: (p, problems) => {
    if (p.schema !== undefined && (typeof p.schema !== 'object' || p.schema === null || Array.isArray(p.schema))) {
      problems.push('schema: must be a JSON Schema object');
    }
    return ['schema'];
  },
  vote: (p, problems) => {
    extractor(p, EXTRACTORS, 'last-number', problems);
    return ['extract', 'pattern', 'flags', 'normalize'];
  },
  'exact-match': (p, problems) => {
    extractor(p, ['full', ...EXTRACTORS], 'full', problems);
    return ['extract', 'pattern', 'flags', 'normalize'];
  },
  'numeric-match': (p, problems) => {
    nonNegative(p, 'tolerance', problems);
    nonNegative(p, 'relativeTolerance', problems);
    return ['tolerance', 'relativeTolerance'];
  },
  contains: (p, problems) => {
    choice(p, 'normalize', NORMALIZERS, problems);
    if (p.wholeWord !== undefined && typeof p.wholeWord !== 'boolean') {
      problems.push(`wholeWord: must be true or false, got ${show(p.wholeWord)}`);
    }
    return ['normalize', 'wholeWord'];
  },
  sql: (p, problems) => {
    sqlParams(p, problems);
    return SQL_KEYS;
  },
  'sql-execution-match': (p, problems) => {
    sqlParams(p, problems);
    return SQL_KEYS.filter((k) => k !== 'vote');
  },
  python: (p, problems) => {
    const m = p.module;
    if (typeof m !== 'string' || !/^[\w.]+:[\w.]+$/.test(m)) {
      problems.push(`module: required, 'package.module:function', got ${show(m)}`);
    }
    if (p.args !== undefined && (typeof p.args !== 'object' || p.args === null || Array.isArray(p.args))) {
      problems.push('args: must be an object of keyword arguments');
    }
    if (p.reference !== undefined && typeof p.reference !== 'boolean') {
      problems.push(`reference: must be true or false, got ${show(p.reference)}`);
    }
    return ['module', 'args', 'reference'];
  },
};

/** The problems a scorer of `type` would raise for `params`, each `key: reason` (empty when fine or unchecked). */
export function scorerParamsProblems(type: string, params: Params): string[] {
  const check = CHECKS[type];
  if (!check) return [];
  const problems: string[] = [];
  const allowed = check(params, problems);
  return [...unknownKeys(params, allowed), ...problems];
}
