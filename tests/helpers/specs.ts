import fs from 'node:fs';
import type { RunSpecInput } from '../../common/run-spec.js';
import type { RunStageInput } from '../../common/types.js';

/** A small valid run spec rooted at `root` (a file:// URI), with a prompts file written there. */
export function roundSpec(root: string, over: Partial<RunSpecInput> = {}): RunSpecInput {
  const prompts = `${root}/prompts.jsonl`;
  if (!fs.existsSync(new URL(prompts))) {
    fs.writeFileSync(
      new URL(prompts),
      Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: `p${i}`, prompt: `q${i}` })).join('\n') + '\n',
    );
  }
  return {
    apiVersion: 'tao/v1',
    name: 'wf',
    baseModel: 'tiny://wf',
    prompts: { uri: prompts },
    evaluation: { heldOutFraction: 0.2, reuseTrainingScorers: true },
    generation: { shards: 2, samplesPerPrompt: 2, maxTokens: 8 },
    scoring: { scorers: [{ name: 'lower', type: 'regex', params: { pattern: '[a-z]', mode: 'fraction' } }] },
    training: { maxSteps: 2 },
    executor: { type: 'local', heartbeatTimeoutSeconds: 5 },
    artifacts: { uri: root },
    ...over,
  };
}

/** A prepare-stage activity input rooted at `root` (a file:// URI), with a one-line prompts file written there. */
export function stageInput(root: string, over: Partial<RunStageInput> = {}): RunStageInput {
  if (!fs.existsSync(new URL(root + '/prompts.jsonl'))) {
    fs.writeFileSync(new URL(root + '/prompts.jsonl'), '{"id":"1","prompt":"hi"}\n');
  }
  return {
    run: { name: 't', round: 1, workflowId: 'tao/t/round-1' },
    stage: 'prepare',
    shard: null,
    inputs: { prompts: root + '/prompts.jsonl', model: 'tiny://t' },
    params: { onInvalid: 'fail', shards: 2, seed: 0, heldOutFraction: 0.2 },
    artifacts: { uri: root },
    executor: { type: 'local', resources: {}, heartbeatTimeoutSeconds: 60 },
    ...over,
  };
}
