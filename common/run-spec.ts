/**
 * The run spec: one versioned document describing a TAO round. It is the workflow input of `taoRound`, so
 * `temporal workflow start --input-file spec.json` works. Pure zod: imported by workflows (validation inside
 * the sandbox), activities, the CLI and the schema generator (schemas/run-spec.schema.json).
 */
import { z } from 'zod';

export const STAGES = ['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate'] as const;
export type JobStage = (typeof STAGES)[number];

const name = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/, 'lowercase letters, digits and "-", 1-40 characters');

/**
 * file:///abs, s3://bucket/key, or file:relative/path (resolved against the worker's working directory, so
 * the examples run from a checkout); tiny://<name> is a tiny model built on the spot (demo, tests).
 */
const artifactUri = z
  .string()
  .regex(/^(file:\/\/\/.|file:[^/]|s3:\/\/[^/]+\/?)/, 'must be file:///absolute, file:relative or s3://bucket/prefix');
const modelUri = z
  .string()
  .regex(/^(file:\/\/\/.|file:[^/]|s3:\/\/[^/]+\/|tiny:\/\/.)/, 'must be a file:, s3:// or tiny:// URI');

/** Scorers that compare an answer with the prompt's `reference` (gold answer or gold SQL): evaluation only. */
export const REFERENCE_SCORER_TYPES = [
  'exact-match',
  'numeric-match',
  'contains',
  'sql-execution-match',
  'judge-with-reference',
] as const;
export const SCORER_TYPES = ['regex', 'length', 'json', 'python', 'sql', 'vote', 'judge', 'reward-model'] as const;

/** True for a scorer that needs references: a reference type, or the python verifier with `reference: true`. */
export function needsReference(s: { type: string; params?: Record<string, unknown> }): boolean {
  return (
    (REFERENCE_SCORER_TYPES as readonly string[]).includes(s.type) ||
    (s.type === 'python' && s.params?.reference === true)
  );
}

const scorer = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9_-]+$/, 'letters, digits, "_" and "-"'),
    type: z
      .enum([...SCORER_TYPES, ...REFERENCE_SCORER_TYPES])
      .describe(
        'rules (regex, length, json), verifiers (python, sql), self-consistency (vote), models (judge, reward-model); ' +
          'evaluation only, against references: exact-match, numeric-match, contains, sql-execution-match, judge-with-reference',
      ),
    weight: z.number().positive().default(1),
    params: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

const taskScorers = z
  .record(z.string(), z.array(z.string()).min(1))
  .describe('per-task choice of scorer names; prompts without a listed task use every scorer');

/** Gate rules and the fewest paired evaluation prompts each needs (below it a bootstrap interval is noise). */
export const GATE_RULES = ['mean', 'ciLower'] as const;
export type GateRule = (typeof GATE_RULES)[number];
export const MIN_EVAL_PROMPTS: Record<GateRule, number> = { mean: 5, ciLower: 10 };

/**
 * Per-stage resources. `nodes` > 1 (pods working as one gang: an Indexed Job running torchrun across them) is
 * only for train; the other stages scale out with `generation.shards` (independent Jobs), so for them the
 * schema caps `nodes` at 1 (also in the committed JSON Schema, so the Python jobs and editors agree).
 */
const ONE_NODE_ONLY =
  'only train runs on more than one node (one torchrun gang); generate and score scale out with generation.shards';
const stageResources = (multiNode: boolean) => {
  const nodes = z.number().int().min(1);
  return z
    .object({
      cpu: z.string().optional(),
      memory: z.string().optional(),
      gpu: z.number().int().nonnegative().optional().describe('GPUs per pod (per node when nodes > 1)'),
      nodes: (multiNode ? nodes : nodes.max(1, ONE_NODE_ONLY)).optional().meta({
        default: 1,
        description: multiNode
          ? 'pods training as one torchrun gang (a Kubernetes Indexed Job with a headless Service)'
          : 'must be 1: only train runs on several nodes',
      }),
    })
    .strict();
};
const resources = stageResources(false);

/** The baseline arms a round can run beside TAO (docs/evaluation.md#baselines); none gates promotion. */
export const BASELINE_ARMS = ['labelledFineTuning', 'bestOfN', 'randomReward'] as const;
export type BaselineArm = (typeof BASELINE_ARMS)[number];

const baselines = z
  .object({
    labelledFineTuning: z
      .object({
        targetTemplate: z
          .union([z.string(), z.record(z.string(), z.string())])
          .default('{reference}')
          .describe(
            'the SFT target built from a training prompt\'s reference: "{reference}" is replaced by it (a list: its ' +
              'first element); one template, or one per task ("*": tasks not listed), e.g. "the answer is {reference}."',
          ),
        missingReferences: z
          .enum(['fail', 'skip'])
          .default('fail')
          .describe('a training prompt without a reference: refuse the round, or leave the prompt out of this arm'),
        epochs: z.number().positive().optional().describe('default: training.epochs'),
        learningRate: z.number().positive().optional().describe('default: training.learningRate'),
        maxSteps: z.number().int().optional().describe('default: training.maxSteps'),
      })
      .strict()
      .optional()
      .describe("supervised fine-tuning on the training prompts' references (the labelled baseline)"),
    bestOfN: z
      .object({
        samplesPerPrompt: z
          .number()
          .int()
          .min(2)
          .max(256)
          .optional()
          .describe('N (default: generation.samplesPerPrompt)'),
      })
      .strict()
      .optional()
      .describe(
        "N samples per held-out prompt from the base model with the round's strategies, the training scorers pick " +
          "one, the evaluation's scorers score it (test-time compute at inference: N times the serving cost)",
      ),
    randomReward: z
      .object({ seed: z.number().int().default(0) })
      .strict()
      .optional()
      .describe("the round's own generations rescored with a random reward, then the same dataset and training"),
  })
  .strict();

export const RunSpecSchema = z
  .object({
    apiVersion: z.literal('tao/v1'),
    kind: z.literal('Round').default('Round'),
    name: name.describe('run name; part of workflow ids, artifact paths and the registry pointer'),
    round: z.number().int().min(1).default(1),
    baseModel: modelUri.describe('Hugging Face model directory (file:// or s3://) or tiny://<name>'),
    prompts: z
      .object({
        uri: artifactUri.describe('JSONL: {id, prompt | messages, task?}'),
        onInvalid: z.enum(['fail', 'skip']).default('fail'),
      })
      .strict(),
    evaluation: z
      .object({
        heldOutFraction: z.number().gt(0).lt(1).optional(),
        heldOutUri: artifactUri.optional(),
        benchmarkUri: artifactUri
          .optional()
          .describe('JSONL of prompts with references, scored every round unchanged (drift across rounds)'),
        scorers: z
          .array(scorer)
          .min(1)
          .optional()
          .describe("the evaluation's own scorers, independent of the training reward (reference scorers allowed)"),
        tasks: taskScorers.optional(),
        reuseTrainingScorers: z
          .boolean()
          .optional()
          .describe('true: judge the round with the training scorers (not independent); set this or scorers'),
        samplesPerPrompt: z.number().int().min(1).max(64).default(1),
        temperature: z.number().min(0).max(2).default(0),
        seed: z.number().int().default(0),
      })
      .strict()
      .refine((e) => (e.heldOutFraction === undefined) !== (e.heldOutUri === undefined), {
        message: 'set exactly one of heldOutFraction and heldOutUri',
      }),
    generation: z
      .object({
        engine: z.enum(['transformers', 'vllm']).default('transformers'),
        samplesPerPrompt: z.number().int().min(2).max(256).default(8),
        strategies: z
          .array(z.enum(['plain', 'cot', 'concise', 'json']))
          .min(1)
          .default(['plain']),
        temperatures: z.array(z.number().gt(0).max(2)).min(1).default([1.0]),
        topP: z.number().gt(0).max(1).default(1),
        maxTokens: z.number().int().min(1).max(32768).default(256),
        shards: z.number().int().min(1).max(2000).default(1),
        seed: z.number().int().default(0),
      })
      .strict(),
    scoring: z
      .object({
        scorers: z.array(scorer).min(1),
        tasks: taskScorers.default({}),
      })
      .strict(),
    training: z
      .object({
        algorithm: z.enum(['dpo', 'sft', 'kto', 'grpo']).default('dpo'),
        minMargin: z
          .number()
          .min(0)
          .default(0.1)
          .describe('dpo: keep a best/worst pair only if their scores differ this much'),
        minScore: z.number().default(0).describe("sft: keep a prompt's best sample only if it scores at least this"),
        ktoQuantile: z
          .number()
          .gt(0)
          .max(0.5)
          .default(0.25)
          .describe("kto: top and bottom fraction of each prompt's samples as desirable / undesirable"),
        klCoef: z.number().min(0).default(0.05).describe('grpo: weight of the KL penalty to the base model'),
        fullFineTune: z.boolean().default(false).describe('train all weights instead of a LoRA adapter'),
        lora: z
          .object({
            r: z.number().int().min(1).default(8),
            alpha: z.number().positive().default(16),
            dropout: z.number().min(0).max(1).default(0),
            targetModules: z.union([z.literal('all-linear'), z.array(z.string()).min(1)]).default('all-linear'),
          })
          .strict()
          .default({ r: 8, alpha: 16, dropout: 0, targetModules: 'all-linear' }),
        learningRate: z.number().positive().default(5e-5),
        epochs: z.number().positive().default(1),
        maxSteps: z.number().int().default(-1),
        batchSize: z.number().int().min(1).default(4),
        beta: z.number().positive().default(0.1),
        sftWeight: z
          .number()
          .min(0)
          .default(1)
          .describe('weight of a log-likelihood term on the chosen answer added to DPO (RPO); 0 = pure DPO'),
        seed: z.number().int().default(0),
      })
      .strict(),
    gate: z
      .object({
        rule: z
          .enum(GATE_RULES)
          .default('ciLower')
          .describe(
            "the statistic of the paired per-prompt difference (candidate − base, on the evaluation's own metric) " +
              'that must exceed minImprovement: its mean, or the lower bound of its bootstrap 95% CI',
          ),
        minImprovement: z.number().default(0).describe("the rule's statistic must exceed this"),
        maxTaskRegression: z
          .number()
          .min(0)
          .default(0.05)
          .describe("multi-task rounds: refuse when any task's mean difference is below −maxTaskRegression"),
        rewardHacking: z
          .enum(['refuse', 'allow'])
          .default('refuse')
          .describe('training reward up while the independent metric is flat or down: refuse promotion, or allow it'),
        flatTolerance: z
          .number()
          .min(0)
          .default(0.01)
          .describe('an independent-metric change at or below this counts as flat for the reward-hacking guard'),
        promote: z.boolean().default(true),
      })
      .strict()
      .default({
        rule: 'ciLower',
        minImprovement: 0,
        maxTaskRegression: 0.05,
        rewardHacking: 'refuse',
        flatTolerance: 0.01,
        promote: true,
      }),
    executor: z
      .object({
        type: z.enum(['local', 'kubernetes']).default('local'),
        resources: z
          .object({
            prepare: resources.optional(),
            generate: resources.optional(),
            score: resources.optional(),
            dataset: resources.optional(),
            train: stageResources(true).optional(),
            evaluate: resources.optional(),
          } satisfies Record<JobStage, unknown>)
          .strict()
          .default({}),
        heartbeatTimeoutSeconds: z
          .number()
          .int()
          .min(5)
          .max(600)
          .default(60)
          .describe('how fast a dead worker is noticed and its stage retried elsewhere'),
      })
      .strict()
      .refine((e) => e.type === 'kubernetes' || (e.resources.train?.nodes ?? 1) === 1, {
        path: ['resources', 'train', 'nodes'],
        message: 'more than one node needs executor.type "kubernetes" (the local executor runs one process)',
      })
      .default({ type: 'local', resources: {}, heartbeatTimeoutSeconds: 60 }),
    artifacts: z
      .object({
        uri: artifactUri.describe('root of all artifacts of this run'),
        s3: z
          .object({
            endpoint: z.string().url().optional(),
            region: z.string().default('us-east-1'),
            forcePathStyle: z.boolean().default(true),
          })
          .strict()
          .optional(),
      })
      .strict(),
    operator: z
      .object({
        waitOnFailure: z
          .boolean()
          .default(true)
          .describe(
            'a stage that fails for good waits for retryStage / skipStage / abort instead of failing the round',
          ),
        decisionTimeoutSeconds: z
          .number()
          .int()
          .min(1)
          .default(86_400)
          .describe('how long a failed stage waits for an operator before the round fails with its reason'),
      })
      .strict()
      .default({ waitOnFailure: true, decisionTimeoutSeconds: 86_400 }),
    baselines: baselines
      .optional()
      .describe('optional baseline arms run beside TAO and reported with the same paired statistics; off by default'),
    registry: z
      .object({ uri: artifactUri.describe('where the promoted-model pointer lives') })
      .strict()
      .optional(),
  })
  .strict();

export type RunSpecInput = z.input<typeof RunSpecSchema>;
export type RunSpec = z.output<typeof RunSpecSchema>;
