/**
 * Generates the JSON Schemas from the zod schemas. The committed copies are checked by a test so they
 * never drift; the Python jobs carry the stage-spec schema in their package (no TypeScript at run time).
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FlywheelSpecSchema } from '../common/flywheel-spec.js';
import { RunSpecSchema } from '../common/run-spec.js';
import { StageSpecSchema } from '../common/stage-spec.js';

const root = fileURLToPath(new URL('..', import.meta.url));

export function schemaFiles(): Record<string, string> {
  const run = z.toJSONSchema(RunSpecSchema, { io: 'input', target: 'draft-2020-12' });
  const stage = z.toJSONSchema(StageSpecSchema, { io: 'input', target: 'draft-2020-12' });
  const flywheel = z.toJSONSchema(FlywheelSpecSchema, { io: 'input', target: 'draft-2020-12' });
  const text = (s: object, id: string) => JSON.stringify({ $id: id, title: id, ...s }, null, 2) + '\n';
  return {
    'schemas/run-spec.schema.json': text(run, 'tao/v1 Round'),
    'schemas/stage-spec.schema.json': text(stage, 'tao/v1 StageSpec'),
    'schemas/flywheel-spec.schema.json': text(flywheel, 'tao/v1 Flywheel'),
    'jobs/src/tao_jobs/schemas/stage-spec.schema.json': text(stage, 'tao/v1 StageSpec'),
    'jobs/src/tao_jobs/schemas/run-spec.schema.json': text(run, 'tao/v1 Round'),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [rel, content] of Object.entries(schemaFiles())) {
    const path = root + rel;
    if (check) {
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        /* missing counts as stale */
      }
      if (current !== content) {
        console.error(`${rel} is stale: run npm run gen:schema`);
        stale++;
      }
    } else {
      writeFileSync(path, content);
      console.log(`wrote ${rel}`);
    }
  }
  process.exit(stale ? 1 : 0);
}
