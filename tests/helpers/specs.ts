import fs from 'node:fs';
import type { RunSpecInput } from '../../common/run-spec.js';

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
