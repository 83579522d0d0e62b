/**
 * Failure types, one per meaning. They travel as `ApplicationFailure.type` strings, so they are plain
 * constants here (workflow-safe) and the activity side throws `ApplicationFailure`s with these types.
 *
 * | type                | when                                                    | who handles it                       |
 * | ------------------- | ------------------------------------------------------- | ------------------------------------ |
 * | InvalidRunSpec      | the run spec fails validation (workflow or CLI)         | the user fixes the spec; never retried |
 * | InvalidStageSpec    | a stage job exited 64                                   | non-retryable; a bug or bad params   |
 * | ArtifactMissing     | a stage job exited 65, or an input/manifest is missing  | non-retryable; fix the input, retry  |
 * | StageOutOfMemory    | the job was killed by the OOM killer (137 / OOMKilled)  | non-retryable here; more memory or smaller batches |
 * | StageFailed         | any other exit code or crash                            | retried by Temporal's activity retry |
 * | StoreUnavailable    | the artifact store cannot be read or written            | retried                              |
 * | StoreMisconfigured  | the store preflight: unknown host, refused connection, missing bucket or input, rejected credentials | non-retryable; fix the spec's `artifacts` or the credentials |
 * | InvalidImage        | the stage image cannot be pulled (past its grace period) | non-retryable; fix the image/registry |
 * | StageUnschedulable  | Pending past the pending timeout (scheduler's reason)   | non-retryable; the operator decides  |
 * | StageDeadlineExceeded | the Job ran past its activeDeadlineSeconds            | non-retryable; raise the deadline    |
 * | RoundAborted        | an operator sent `abort` (the round's running jobs are cancelled) | nobody: the round ends |
 * | InvalidOperatorAction | a decision the round cannot carry out (e.g. a required stage skipped) | the operator; never retried |
 * | NothingToTrainOn    | every generate/score shard was skipped                  | the operator; fix the shards, rerun  |
 * | InvalidFlywheelSpec | the flywheel spec or its log source is invalid          | the user fixes the spec; never retried |
 * | GateFailed          | not an error: recorded in the result when tuned ≤ base  | the round completes unpromoted       |
 */
export const FailureType = {
  InvalidRunSpec: 'InvalidRunSpec',
  InvalidStageSpec: 'InvalidStageSpec',
  ArtifactMissing: 'ArtifactMissing',
  StageOutOfMemory: 'StageOutOfMemory',
  StageFailed: 'StageFailed',
  StoreUnavailable: 'StoreUnavailable',
  StoreMisconfigured: 'StoreMisconfigured',
  InvalidImage: 'InvalidImage',
  StageUnschedulable: 'StageUnschedulable',
  StageDeadlineExceeded: 'StageDeadlineExceeded',
  RoundAborted: 'RoundAborted',
  InvalidOperatorAction: 'InvalidOperatorAction',
  NothingToTrainOn: 'NothingToTrainOn',
  InvalidFlywheelSpec: 'InvalidFlywheelSpec',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failure types that retrying the same activity cannot fix. */
export const NON_RETRYABLE: FailureType[] = [
  FailureType.InvalidRunSpec,
  FailureType.InvalidStageSpec,
  FailureType.ArtifactMissing,
  FailureType.StageOutOfMemory,
  FailureType.InvalidImage,
  // retrying cannot make GPUs appear; the Job is deleted and the operator decides (retry later, abort)
  FailureType.StageUnschedulable,
  FailureType.StageDeadlineExceeded,
  FailureType.StoreMisconfigured,
];

/** Maps a stage job's exit code (the container contract) to a failure type. */
export function failureTypeForExit(code: number | null, signal: string | null): FailureType {
  if (code === 64) return FailureType.InvalidStageSpec;
  if (code === 65) return FailureType.ArtifactMissing;
  if (code === 137 || signal === 'SIGKILL') return FailureType.StageOutOfMemory;
  return FailureType.StageFailed;
}
