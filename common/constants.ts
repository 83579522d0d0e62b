/** Names users see (public API: treat changes as breaking). */
export const TASK_QUEUE = 'tao';
export const ROUND_WORKFLOW = 'taoRound';
export const FLYWHEEL_WORKFLOW = 'taoFlywheel';
export const PROGRESS_QUERY = 'progress';

/** Workflow id for a round when the caller does not choose one. */
export function roundWorkflowId(runName: string, round: number): string {
  return `tao/${runName}/round-${round}`;
}
