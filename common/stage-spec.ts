/**
 * The stage spec: what one stage job receives (`python -m tao_jobs <stage> --spec <uri>`). Written by the
 * stage activity next to the job's outputs; its JSON Schema (schemas/stage-spec.schema.json) is what the
 * Python jobs validate against, so both sides share one contract.
 */
import { z } from 'zod';
import { RunSpecSchema } from './run-spec.js';

const uri = z.string().regex(/^(file|s3|tiny):\/\/.+/, 'must be a file://, s3:// or tiny:// URI');
const run = RunSpecSchema.shape;

const common = {
  apiVersion: z.literal('tao/v1'),
  kind: z.literal('StageSpec'),
  run: z
    .object({
      name: z.string(),
      round: z.number().int(),
      workflowId: z.string(),
      codeVersion: z.string(),
    })
    .strict(),
  /** The memo key: hash of stage, params, input digests and code version. Also the output prefix's last part. */
  key: z.string(),
  shard: z
    .object({ index: z.number().int().min(0), count: z.number().int().min(1) })
    .strict()
    .nullable(),
  output: z.string().regex(/^(file|s3):\/\/.+\/$/, 'must be a file:// or s3:// prefix ending in "/"'),
  store: z
    .object({
      s3: z
        .object({ endpoint: z.string().optional(), region: z.string(), forcePathStyle: z.boolean() })
        .strict()
        .optional(),
    })
    .strict(),
};

export const PrepareSpecSchema = z
  .object({
    ...common,
    stage: z.literal('prepare'),
    inputs: z.object({ prompts: uri, heldOut: uri.optional(), benchmark: uri.optional(), model: uri }).strict(),
    params: z
      .object({
        onInvalid: z.enum(['fail', 'skip']),
        heldOutFraction: z.number().optional(),
        shards: z.number().int().min(1),
        seed: z.number().int(),
        references: z
          .record(z.string(), z.string().nullable())
          .optional()
          .describe(
            'evaluation prompts of these tasks ("*": every task without its own scorer list) must carry a ' +
              'reference; the value is the run-spec field of the reference scorer that needs it (null: none)',
          ),
        minEvalPrompts: z
          .object({ count: z.number().int().min(1), field: z.string() })
          .strict()
          .optional()
          .describe('the fewest evaluation prompts (held-out + benchmark) the gate rule named by field needs'),
        labelled: z
          .object({
            targetTemplate: z.record(z.string(), z.string()),
            missingReferences: z.enum(['fail', 'skip']),
            field: z.string(),
          })
          .strict()
          .optional()
          .describe(
            'the labelled baseline (run-spec field `field`): write only baseline-labelled-sft.jsonl, the training ' +
              'prompts with their references as SFT targets (template per task, "*": the rest), nothing else',
          ),
      })
      .strict(),
  })
  .strict();

export const GenerateSpecSchema = z
  .object({
    ...common,
    stage: z.literal('generate'),
    inputs: z.object({ prompts: uri, model: uri }).strict(),
    params: run.generation.omit({ shards: true }).required().strict(),
  })
  .strict();

const scoringParams = z
  .object({
    scorers: z.array(
      z
        .object({ name: z.string(), type: z.string(), weight: z.number(), params: z.record(z.string(), z.unknown()) })
        .strict(),
    ),
    tasks: z.record(z.string(), z.array(z.string())),
  })
  .strict();

export const ScoreSpecSchema = z
  .object({
    ...common,
    stage: z.literal('score'),
    inputs: z.object({ prompts: uri, generations: uri }).strict(),
    params: scoringParams,
  })
  .strict();

export const DatasetSpecSchema = z
  .object({
    ...common,
    stage: z.literal('dataset'),
    inputs: z
      .object({ prompts: z.array(uri).min(1), generations: z.array(uri).min(1), scores: z.array(uri).min(1) })
      .strict(),
    params: z
      .object({
        algorithm: z.enum(['dpo', 'sft', 'kto', 'grpo']),
        minMargin: z.number().min(0),
        minScore: z.number().optional(),
        ktoQuantile: z.number().gt(0).max(0.5).optional(),
      })
      .strict(),
  })
  .strict();

export const TrainSpecSchema = z
  .object({
    ...common,
    stage: z.literal('train'),
    inputs: z.object({ dataset: uri, model: uri }).strict(),
    params: run.training.required().strict(),
  })
  .strict();

/** The gate settings the evaluate stage reports against (the workflow's gate decides with the same rules). */
const gateParams = run.gate.unwrap().required().strict();

export const EvaluateSpecSchema = z
  .object({
    ...common,
    stage: z.literal('evaluate'),
    inputs: z
      .object({
        prompts: uri,
        benchmark: uri.optional(),
        base: uri,
        tuned: uri,
        promoted: uri.optional(),
        /** Baseline arms (run-spec `baselines`): their models, and best-of-N's samples with their training scores. */
        labelledFineTuning: uri.optional(),
        randomReward: uri.optional(),
        bestOfNGenerations: uri.optional(),
        bestOfNScores: uri.optional(),
      })
      .strict(),
    params: z
      .object({
        /** The training scorers: the training reward, set beside the independent metric. */
        scoring: scoringParams,
        /** The evaluation's own scorers, or the explicit choice to reuse the training scorers. */
        evaluation: z
          .object({
            reuseTrainingScorers: z.boolean(),
            scorers: scoringParams.shape.scorers.optional(),
            tasks: scoringParams.shape.tasks.optional(),
          })
          .strict()
          .optional(),
        samplesPerPrompt: z.number().int().min(1),
        temperature: z.number().min(0),
        maxTokens: z.number().int().min(1),
        seed: z.number().int(),
        bootstrap: z.number().int().min(100).default(1000),
        gate: gateParams.optional(),
      })
      .strict(),
  })
  .strict();

export const StageSpecSchema = z.discriminatedUnion('stage', [
  PrepareSpecSchema,
  GenerateSpecSchema,
  ScoreSpecSchema,
  DatasetSpecSchema,
  TrainSpecSchema,
  EvaluateSpecSchema,
]);
export type StageSpec = z.output<typeof StageSpecSchema>;
