/**
 * A flywheel's template is checked as the rounds it will start (checkFlywheelTemplate): the same cross-field
 * checks as a round's spec, reported under `template.`, so a bad template fails `tao schedule create` and the
 * flywheel's first step instead of its first child round.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FlywheelSpecSchema, type FlywheelSpecInput } from '../../common/flywheel-spec.js';
import { checkFlywheelTemplate } from '../../common/validate.js';
import { checkSchedule } from '../../scripts/cli/schedule.js';
import { SpecFileError } from '../../scripts/cli/spec-file.js';

const example = JSON.parse(fs.readFileSync('examples/flywheel/flywheel.json', 'utf8')) as FlywheelSpecInput;
const withTemplate = (over: object): FlywheelSpecInput =>
  ({ ...example, template: { ...example.template, ...over } }) as FlywheelSpecInput;
const parse = (spec: FlywheelSpecInput) => FlywheelSpecSchema.parse(spec);
const schedule = { cron: '0 2 * * *', timezone: 'UTC', overlap: 'skip', catchupWindow: '1h', pauseOnFailure: true };

describe('checkFlywheelTemplate', () => {
  it('the example flywheel passes', () => {
    expect(checkFlywheelTemplate(parse(example))).toEqual([]);
  });

  it.each([
    [
      'duplicate scorer names',
      {
        scoring: {
          scorers: [
            { name: 'a', type: 'regex', params: { pattern: 'x' } },
            { name: 'a', type: 'regex', params: { pattern: 'y' } },
          ],
        },
      },
      /^template\.scoring\.scorers\.1\.name: /,
    ],
    [
      'an invalid regex',
      { scoring: { scorers: [{ name: 'a', type: 'regex', params: { pattern: '(' } }] } },
      /^template\.scoring\.scorers\.0\.params\.pattern: /,
    ],
    ['no explicit evaluation choice', { evaluation: { heldOutFraction: 0.2 } }, /^template\.evaluation\.scorers: /],
  ])('%s is named under template.', (_what, over, message) => {
    const problems = checkFlywheelTemplate(parse(withTemplate(over)));
    expect(problems.some((p) => message.test(p))).toBe(true);
  });

  it('tao schedule create refuses it before creating anything (exit 2, SpecFileError)', () => {
    const bad = withTemplate({ scoring: { scorers: [{ name: 'a', type: 'regex', params: { pattern: '(' } }] } });
    expect(() => checkSchedule('fw.json', bad, schedule as never)).toThrow(SpecFileError);
    expect(() => checkSchedule('fw.json', bad, schedule as never)).toThrow(
      /template\.scoring\.scorers\.0\.params\.pattern/,
    );
  });
});
