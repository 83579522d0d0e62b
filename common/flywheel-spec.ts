/**
 * The flywheel spec: continuous improvement. Each run of `taoFlywheel` (normally started by a nightly
 * Temporal Schedule) takes the prompts that arrived in `source` since the last finished round, de-duplicates
 * them against earlier rounds, optionally redacts PII, and runs one `taoRound` child starting from the last
 * promoted model. It is the workflow input of `taoFlywheel` (and of the schedule's action).
 */
import { z } from 'zod';
import { RunSpecSchema } from './run-spec.js';

const prefixUri = z
  .string()
  .regex(/^(file:\/\/\/.|file:[^/]|s3:\/\/[^/]+\/)/, 'must be a file:/// , file:relative or s3://bucket/ prefix');

/** A round spec without the parts the flywheel fills in for each round. */
export const RoundTemplateSchema = RunSpecSchema.omit({ name: true, round: true, prompts: true, kind: true }).extend({
  prompts: z
    .object({ onInvalid: z.enum(['fail', 'skip']).default('skip') })
    .strict()
    .default({ onInvalid: 'skip' }),
});

export const FlywheelSpecSchema = z
  .object({
    apiVersion: z.literal('tao/v1'),
    kind: z.literal('Flywheel').default('Flywheel'),
    name: RunSpecSchema.shape.name.describe(
      'run name: rounds are tao/<name>/round-<n>, the registry pointer is per name',
    ),
    source: z
      .object({
        uri: prefixUri.describe('where inference logs land: JSONL files of OpenAI chat requests, taken in key order'),
        format: z.enum(['openai-chat']).default('openai-chat'),
      })
      .strict(),
    redactPii: z.boolean().default(false).describe('replace e-mail addresses, phone, card and ID numbers, IPs'),
    minNewPrompts: z
      .number()
      .int()
      .min(1)
      .default(10)
      .describe('fewer new prompts than this: the run ends early with "nothing new"'),
    maxRoundsPerRun: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('catch up on a backlog: up to this many rounds per run, continuing-as-new between rounds'),
    template: RoundTemplateSchema.describe('the round spec for every round (baseModel: the first round only)'),
  })
  .strict();

export type FlywheelSpecInput = z.input<typeof FlywheelSpecSchema>;
export type FlywheelSpec = z.output<typeof FlywheelSpecSchema>;
