/** Custom search attributes of rounds (docs/design.md#rule-10): one list for the workflow, the dev server and setup. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SA = {
  runName: defineSearchAttributeKey('TaoRunName', SearchAttributeType.KEYWORD),
  round: defineSearchAttributeKey('TaoRound', SearchAttributeType.INT),
  stage: defineSearchAttributeKey('TaoStage', SearchAttributeType.KEYWORD),
  stageStatus: defineSearchAttributeKey('TaoStageStatus', SearchAttributeType.KEYWORD),
  model: defineSearchAttributeKey('TaoModel', SearchAttributeType.KEYWORD),
  configHash: defineSearchAttributeKey('TaoConfigHash', SearchAttributeType.KEYWORD),
  /** The gate's rule, statistic, threshold and verdict: `ciLower +0.0412 vs 0: promote`. */
  gate: defineSearchAttributeKey('TaoGate', SearchAttributeType.KEYWORD),
};

/** Name → type as the `temporal` CLI spells it (`--search-attribute TaoStage=Keyword`). */
export const SEARCH_ATTRIBUTE_TYPES: Record<string, 'Keyword' | 'Int'> = Object.fromEntries(
  Object.values(SA).map((k) => [k.name, k.type === SearchAttributeType.INT ? 'Int' : 'Keyword']),
);
