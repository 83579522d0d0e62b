import { createHash } from 'node:crypto';

/**
 * Deterministic job identity (DESIGN rule 3): a function of workflow id, round, stage, shard and the
 * generation counter, never of the Temporal attempt, so a retried activity or a new worker finds the same
 * job. At most 63 characters, DNS-1123 (lowercase alphanumerics and "-"); the readable part is truncated and
 * a hash of the full identity keeps names unique.
 */
export function jobName(id: {
  workflowId: string;
  round: number;
  stage: string;
  shard: number | null;
  generation: number;
}): string {
  const full = `${id.workflowId}|${id.round}|${id.stage}|${id.shard ?? '-'}|${id.generation}`;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 10);
  const readable = id.workflowId
    .replace(/^tao\//, '') // the default ids all start with tao/: do not spend characters on it
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const suffix = `-r${id.round}-${id.stage}${id.shard === null ? '' : `-s${id.shard}`}-g${id.generation}-${hash}`;
  const head = `tao-${readable}`.slice(0, 63 - suffix.length).replace(/-+$/, '');
  return `${head}${suffix}`;
}
