/** `tao verify <workflow-id>`: which stage folders a finished round's result points at. */
import { describe, expect, it } from 'vitest';
import { stagePrefixOf } from '../../activities/artifacts/verify.js';
import type { RoundResult } from '../../common/types.js';
import { isStoreTarget, stagesOfResult } from '../../scripts/cli/verify.js';

const at = (stage: string, key: string, rest: string) => `s3://b/runs/stages/${stage}/${key}/attempts/j1/${rest}`;

describe('tao verify targets', () => {
  it('finds the stage folder of any output URI, and nothing for URIs outside the stages', () => {
    expect(stagePrefixOf(at('train', 'k9', 'merged/'))).toEqual({
      prefix: 's3://b/runs/stages/train/k9/',
      stage: 'train',
      key: 'k9',
    });
    expect(stagePrefixOf('file:///models/base/')).toBeNull();
    expect(stagePrefixOf('tiny://t')).toBeNull();
  });

  it("collects every stage of a round's result once, models included", () => {
    const result = {
      baseModel: 'tiny://t',
      tunedModel: at('train', 'kt', 'merged/'),
      artifacts: {
        prompts: [at('prepare', 'kp', 'prompts/shard-0000.jsonl'), at('prepare', 'kp', 'prompts/shard-0001.jsonl')],
        heldOut: at('prepare', 'kp', 'heldout.jsonl'),
        generations: [at('generate', 'g0', 'generations.jsonl'), at('generate', 'g1', 'generations.jsonl')],
        scores: [at('score', 's0', 'scores.jsonl')],
        dataset: at('dataset', 'kd', 'dpo.jsonl'),
        adapter: at('train', 'kt', 'adapter/'),
        merged: at('train', 'kt', 'merged/'),
        report: at('evaluate', 'ke', 'report.md'),
      },
    } as unknown as RoundResult;
    expect(stagesOfResult(result)).toEqual(
      ['dataset/kd', 'evaluate/ke', 'generate/g0', 'generate/g1', 'prepare/kp', 'score/s0', 'train/kt'].map(
        (s) => `s3://b/runs/stages/${s}/`,
      ),
    );
    expect(isStoreTarget('tao/demo/round-1')).toBe(false);
    expect(isStoreTarget('file:artifacts')).toBe(true);
  });
});
