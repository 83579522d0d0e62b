import { createHash } from 'node:crypto';

/**
 * Deterministic job identity (docs/design.md#rule-3): a function of workflow id, round, stage, shard, the
 * stage's memo key and the generation counter, never of the Temporal attempt, so a retried activity or a new
 * worker finds the same job. The key is in the identity so that a rerun of the same workflow id with a changed
 * spec (another key) never finds, and adopts, the Job of the old spec (issue 11, item 1); the executor also
 * checks the key annotation before adopting (`tao.dev/key`). At most 60 characters, DNS-1123 (lowercase alphanumerics and "-"); the readable part is truncated and
 * a hash of the full identity keeps names unique. 60, not 63: the pods of a multi-node (Indexed) train Job
 * are named `<job>-<index>`, which must stay a 63-character DNS label for up to 100 nodes.
 */
export const MAX_JOB_NAME = 60;

export function jobName(id: {
  workflowId: string;
  round: number;
  stage: string;
  shard: number | null;
  generation: number;
  /** The stage's memo key; left out only by callers that have none (a rendered preview). */
  key?: string;
}): string {
  const keyed = id.key ? `|${id.key}` : '';
  const full = `${id.workflowId}|${id.round}|${id.stage}|${id.shard ?? '-'}|${id.generation}${keyed}`;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 10);
  const readable = id.workflowId
    .replace(/^tao\//, '') // the default ids all start with tao/: do not spend characters on it
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const suffix = `-r${id.round}-${id.stage}${id.shard === null ? '' : `-s${id.shard}`}-g${id.generation}-${hash}`;
  const head = `tao-${readable}`.slice(0, MAX_JOB_NAME - suffix.length).replace(/-+$/, '');
  return `${head}${suffix}`;
}
