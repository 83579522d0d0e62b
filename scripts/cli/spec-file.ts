/** Reading a run spec file (JSON or YAML) for the CLI, with errors that name the file and line. */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { RunSpec } from '../../common/run-spec.js';
import { validateRunSpec } from '../../common/validate.js';

export class SpecFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'SpecFileError';
  }
}

/** Parses without validating: the document exactly as a user wrote it (this is the workflow input). */
export function readSpecDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SpecFileError(file, [`cannot read: ${(e as Error).message}`]);
  }
  if (/\.json$/i.test(file)) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new SpecFileError(file, [`not valid JSON: ${(e as Error).message}`]);
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length)
    throw new SpecFileError(
      file,
      doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message}`),
    );
  return doc.toJS();
}

export function loadSpecFile(file: string): { document: unknown; spec: RunSpec } {
  const document = readSpecDocument(file);
  const checked = validateRunSpec(document);
  if (!checked.ok) throw new SpecFileError(file, checked.errors);
  return { document, spec: checked.spec };
}
