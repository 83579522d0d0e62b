/**
 * `runStage`: one stage (or shard) = one activity = one external job (docs/design.md#rule-2).
 *
 * 1. Resolve inputs; digest the external ones (prompts, base model) and the resources the params name
 *    (model folders, databases, judge models) so the memo key changes with content (artifacts/digest.ts).
 * 2. Memo key = sha256(stage, shard, params, inputs, digests, code version, runtime); stage prefix
 *    `<artifacts>/stages/<stage>/<key>/`. A valid manifest there (sizes, and sha256 of small files, checked)
 *    means the stage is done: return it without launching anything (resume, reruns, cross-run cache). An
 *    invalid one is quarantined and the stage redone.
 * 3. Otherwise run the job in this run's own attempt folder (`attempts/<id>/`) while heartbeating its progress,
 *    check the manifest it wrote last, and publish it with one conditional create of the stage's manifest:
 *    one winner, a loser discards its outputs and returns the winner's (artifacts/publish.ts).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/common';
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { FailureType, NON_RETRYABLE, failureTypeForExit } from '../common/errors.js';
import { canonicalJson } from '../common/hash.js';
import type { RunStageInput, StageResult } from '../common/types.js';
import { digestInput, judgeIdentity, paramRefs } from './artifacts/digest.js';
import { acquireLease, leaseOwner, leaseTtlMs, releaseLease, renewLease } from './artifacts/lease.js';
import { checkManifest, resolveOutputs, type Manifest } from './artifacts/manifest.js';
import {
  ATTEMPTS,
  attemptPrefix,
  discardAttempt,
  pointerManifest,
  publishAttempt,
  QUARANTINE,
  quarantine,
} from './artifacts/publish.js';
import { joinUri, resolveUri, StoreError, type ArtifactStore } from './artifacts/store.js';
import type { Executor, JobProgress, StopReason } from './executors/executor.js';
import { jobName } from './job-name.js';
import { waitForStore } from './store-outage.js';

export interface StageDeps {
  storeFor(artifacts: RunStageInput['artifacts']): ArtifactStore;
  executors: Partial<Record<RunStageInput['executor']['type'], Executor>>;
  /** Version of the stage code (jobs package hash or image digest): part of every memo key. */
  codeVersion: string;
  /** Directory that `file:relative` URIs are resolved against. */
  baseDir: string;
  heartbeatEveryMs?: number;
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

function fail(type: FailureType, message: string, details?: unknown): never {
  throw ApplicationFailure.create({
    type,
    message,
    nonRetryable: NON_RETRYABLE.includes(type),
    details: details ? [details] : [],
  });
}

/** Store errors become typed failures: unavailable is retryable, the rest names what is wrong. */
async function guard<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    if (e instanceof StoreError) {
      fail(
        e.code === 'Unavailable' ? FailureType.StoreUnavailable : FailureType.ArtifactMissing,
        `${what}: ${e.message}`,
      );
    }
    throw e;
  }
}

/**
 * Where the job's store is, for the job to read its stage spec before it has parsed it (the spec then carries
 * the same settings). Only the address: credentials reach jobs from the environment or a Secret, never from here.
 */
export function storeEnv(artifacts: RunStageInput['artifacts']): Record<string, string> {
  const s3 = artifacts.s3;
  if (!s3) return {};
  return {
    ...(s3.endpoint ? { TAO_STORE_S3_ENDPOINT: s3.endpoint } : {}),
    TAO_STORE_S3_REGION: s3.region,
    TAO_STORE_S3_PATH_STYLE: String(s3.forcePathStyle),
  };
}

/**
 * Why the attempt was interrupted (docs/design.md#rule-4). Temporal says NOT_FOUND both when the run closed
 * (terminated, reset) and when this attempt was timed out (a lost heartbeat, e.g. while the server was down)
 * and a retry is coming: the run's state tells them apart. A timed-out attempt's job is left running for the
 * retry (decision 0004); so is it while the run's state cannot be read (the attempt keeps looking).
 */
async function stopReason(ctx: Context): Promise<StopReason> {
  const d = ctx.cancellationDetails;
  // the details come with the cancel; the signal's CancelledFailure names the same reason as its message
  const reason = String((ctx.cancellationSignal.reason as Error | undefined)?.message ?? '');
  if (d?.cancelRequested || reason === 'CANCELLED') return 'cancelled';
  if (d?.workerShutdown || reason === 'WORKER_SHUTDOWN') return 'worker-shutdown';
  if (d?.notFound || reason === 'NOT_FOUND') return (await runOpen(ctx)) === false ? 'run-closed' : 'timeout';
  return 'timeout';
}

/** Is this activity's workflow run still open? null when it cannot be told (no client, no answer). */
async function runOpen(ctx: Context): Promise<boolean | null> {
  const run = ctx.info.workflowExecution;
  if (!run) return null;
  try {
    const state = await ctx.client.workflow.getHandle(run.workflowId, run.runId).describe();
    return state.status.name === 'RUNNING';
  } catch (e) {
    return e instanceof WorkflowNotFoundError ? false : null;
  }
}

export function createRunStage(deps: StageDeps) {
  const attempt = createAttempt(deps);
  /** One attempt; a retryable failure while the store is down waits for the store first (store-outage.ts). */
  return async function runStage(input: RunStageInput): Promise<StageResult> {
    try {
      return await attempt(input);
    } catch (e) {
      const nonRetryable = e instanceof ApplicationFailure && e.nonRetryable;
      if (!nonRetryable && !Context.current().cancellationSignal.aborted) {
        await waitForStore(deps.storeFor(input.artifacts), resolveUri(input.artifacts.uri, deps.baseDir));
      }
      throw e;
    }
  };
}

function createAttempt(deps: StageDeps) {
  return async function runStageAttempt(input: RunStageInput): Promise<StageResult> {
    const ctx = Context.current();
    const started = Date.now();
    const store = deps.storeFor(input.artifacts);
    const root = resolveUri(input.artifacts.uri, deps.baseDir);
    const stagesRoot = joinUri(root, 'stages') + '/';
    const resolve = (u: string) => resolveUri(u, deps.baseDir);
    const inputs = Object.fromEntries(
      Object.entries(input.inputs).map(([k, v]) => [k, Array.isArray(v) ? v.map(resolve) : resolve(v)]),
    );

    const executor = deps.executors[input.executor.type];
    if (!executor)
      fail(FailureType.InvalidRunSpec, `executor "${input.executor.type}" is not configured on this worker`);

    const digests: Record<string, string> = {};
    for (const [name, value] of Object.entries(inputs)) {
      for (const uri of Array.isArray(value) ? value : [value]) {
        if (!uri.startsWith(stagesRoot)) {
          const d = await guard(`input ${name}`, () => digestInput(store, uri));
          if (d === null) fail(FailureType.ArtifactMissing, `input ${name}: ${uri} does not exist`);
          digests[uri] = d;
        }
      }
    }
    // What the params name beyond their values: resources (reward-model folder, SQL database...), the source
    // of python verifiers (through the executor's runtime) and the judge models' identities.
    const refs = paramRefs(input.params);
    for (const r of refs.resources) {
      const uri = resolve(r.uri);
      const d = await guard(`params.${r.at}`, () => digestInput(store, uri));
      if (d !== null) digests[`params.${r.at}`] = d;
      // a file:// path of a pod's own volume need not exist on a Kubernetes worker; the job checks it (exit 65)
      else if (input.executor.type === 'local' || !uri.startsWith('file:'))
        fail(FailureType.ArtifactMissing, `params.${r.at}: ${r.uri} does not exist`);
      else digests[`params.${r.at}`] = 'not visible to the worker';
    }
    for (const j of refs.judges) digests[`judge:${j.at}`] = await judgeIdentity(j.endpoint, j.model);
    const runtime = (await executor.runtimeVersion?.(input.stage, refs.modules)) ?? null;
    const key = sha256(
      canonicalJson({
        stage: input.stage,
        shard: input.shard,
        params: input.params,
        inputs,
        digests,
        code: deps.codeVersion,
        runtime: runtime === null ? null : sha256(runtime),
      }),
    ).slice(0, 20);
    const output = joinUri(stagesRoot, input.stage, key) + '/';
    const nameForGeneration = (generation: number) =>
      jobName({ ...input.run, stage: input.stage, shard: input.shard?.index ?? null, generation, key });
    const name = nameForGeneration(0);
    // This run's own folder: the same for every attempt of this activity (a retry resumes there), another
    // for another workflow running the same key.
    const attemptId = name;
    const attempt = attemptPrefix(output, attemptId);
    const expect = { stage: input.stage, key };

    const result = (manifest: Manifest, reused: boolean, ran = name): StageResult => ({
      stage: input.stage,
      shard: input.shard?.index ?? null,
      key,
      output,
      manifest: joinUri(output, 'manifest.json'),
      outputs: resolveOutputs(output, manifest.outputs),
      records: manifest.records,
      metrics: manifest.metrics,
      durationS: reused ? manifest.timings.durationS : (Date.now() - started) / 1000,
      reused,
      jobName: ran,
    });

    /**
     * The valid manifest under `prefix` (the stage's or this attempt's), or why there is none; a present but
     * invalid one is moved to quarantine first, so it is never taken as done again.
     */
    const validManifest = async (prefix: string): Promise<{ manifest: Manifest } | { reason: string }> => {
      const check = await guard('manifest', () => checkManifest(store, prefix, expect));
      if (check.valid) return { manifest: check.manifest };
      if (check.present) {
        const copy = await guard('quarantine', () => quarantine(store, prefix, check.raw!, check.reason));
        log.warn(`quarantined an invalid manifest (${check.reason}) as ${copy}; the work runs again`);
      }
      return { reason: check.reason };
    };
    /** The published manifest, or null (none, or an invalid one now quarantined: the work is redone). */
    const published = async (): Promise<Manifest | null> => {
      const check = await validManifest(output);
      return 'manifest' in check ? check.manifest : null;
    };
    /** Publishes this attempt's checked manifest; a loser discards its outputs and returns the winner's. */
    const publish = async (m: Manifest, ran: string): Promise<StageResult> => {
      if (await guard('publish', () => publishAttempt(store, output, attemptId, m))) {
        return result(pointerManifest(m, attemptId), false, ran);
      }
      const winner = await published();
      if (!winner) fail(FailureType.StageFailed, `${input.stage}: another attempt published an invalid manifest`);
      // the winner may be this very attempt folder (an earlier activity attempt published it): keep it then
      if (winner.attempt !== `${ATTEMPTS}/${attemptId}/`) await guard('discard', () => discardAttempt(store, attempt));
      log.info(`another attempt published ${output} first; this attempt's outputs were discarded`);
      return result(winner, true, ran);
    };

    const log = ctx.log;
    const existing = await published();
    if (existing) return result(existing, true);

    // One job per stage key (artifacts/lease.ts): hold the key's lease while the job runs. A run that finds it
    // held by another run, or by an earlier attempt of this run that may still be running its job (a heartbeat
    // timeout does not stop it), waits, heartbeating, for that job's manifest and reuses it, or takes the lease
    // over when its holder stops renewing it or its worker is gone. On Kubernetes a retry takes its own run's
    // lease at once: it adopts the running Job by name (decision 0004).
    const ttl = leaseTtlMs();
    const owner = leaseOwner(randomUUID());
    const take = () =>
      guard('lease', () =>
        acquireLease(store, output, attemptId, ttl, { owner, takeOverOwn: executor.kind === 'kubernetes' }),
      );
    let lease = await take();
    while (!lease.held) {
      const message =
        lease.holder === attemptId
          ? 'an earlier attempt of this stage is still running its job; waiting for it'
          : `${lease.holder} is running this stage; waiting for it`;
      ctx.heartbeat({ jobName: name, phase: 'waiting', message });
      await sleep(Math.min(2000, ttl / 4), undefined, { signal: ctx.cancellationSignal }).catch(() => undefined);
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      const done = await published();
      if (done) return result(done, true);
      lease = await take();
    }
    let leaseTag = lease.etag;
    const renewer = setInterval(() => {
      renewLease(store, output, attemptId, leaseTag, ttl, owner)
        .then((tag) => {
          if (tag === null) log.warn(`the lease of ${output} was taken over; publishing still has one winner`);
          else leaseTag = tag;
        })
        .catch(() => undefined); // a store hiccup: the next renewal tries again, well before the expiry
    }, ttl / 3);
    try {
      // Holding the lease, this attempt alone looks at the attempt folder. Published while we waited: reuse.
      const now = await published();
      if (now) return result(now, true);
      // A job that finished here but was never published (the worker died in between): publish, do not redo.
      const finished = await validManifest(attempt);
      if ('manifest' in finished) return await publish(finished.manifest, name);
      // Outputs of this attempt were rejected: a finished job must not be taken as done again (a new generation).
      const redo = (await guard('quarantine', () => store.list(joinUri(attempt, QUARANTINE) + '/'))).length > 0;
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;

      const s3 = input.artifacts.s3;
      const spec = {
        apiVersion: 'tao/v1',
        kind: 'StageSpec',
        stage: input.stage,
        run: {
          name: input.run.name,
          round: input.run.round,
          workflowId: input.run.workflowId,
          codeVersion: deps.codeVersion,
        },
        key,
        shard: input.shard,
        output: attempt,
        store: s3 ? { s3: { endpoint: s3.endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle } } : {},
        inputs,
        params: input.params,
      };
      const specUri = joinUri(attempt, 'stage-spec.json');
      await guard('stage spec', () => store.put(specUri, JSON.stringify(spec, null, 2)));
      const logUri = joinUri(attempt, 'logs', `attempt-${ctx.info.attempt}.log`);

      // Heartbeat on every progress event and at least every few seconds, so cancellation reaches us and the
      // server sees the worker alive even while a job is silent (e.g. loading a model).
      let last: JobProgress = { phase: 'starting' };
      const beat = () => ctx.heartbeat({ jobName: name, logUri, ...last });
      const ticker = setInterval(beat, deps.heartbeatEveryMs ?? 5000);
      const abort = new AbortController();
      // Timed out while the run is open: a local job goes on (nothing else could resume it) and this attempt
      // publishes it for the retry that waits on the lease; it is stopped only if the run closes meanwhile.
      // A Kubernetes Job is left to the retry, which adopts it (decision 0004).
      let timedOut = false;
      let settled = false;
      let watch: NodeJS.Timeout | undefined;
      const onCancel = () =>
        void stopReason(ctx).then((why) => {
          if (settled) return;
          if (why !== 'timeout' || executor.kind === 'kubernetes') return abort.abort(why);
          timedOut = true;
          log.warn(`${name}: this attempt was timed out while its job runs; the job goes on for the retry`);
          watch = setInterval(() => {
            void runOpen(ctx).then((open) => open === false && abort.abort('run-closed'));
          }, 10_000);
        });
      ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      let outcome;
      try {
        outcome = await executor.run(
          {
            name,
            nameForGeneration,
            stage: input.stage,
            shard: input.shard?.index ?? null,
            specUri,
            logUri,
            resources: input.executor.resources[input.stage] ?? {},
            labels: { stage: input.stage, round: String(input.run.round), key },
            env: storeEnv(input.artifacts),
            redo,
            ...(input.arm ? { arm: input.arm } : {}),
            owner: {
              workflowId: input.run.workflowId,
              runId: ctx.info.workflowExecution?.runId ?? '',
              round: input.run.round,
              key,
            },
          },
          {
            onProgress: (p) => {
              last = { ...last, ...p };
              beat();
            },
            signal: abort.signal,
            store,
          },
        );
      } finally {
        settled = true;
        clearInterval(ticker);
        clearInterval(watch);
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
      }
      // A timed-out attempt whose job ran to the end publishes it all the same: its retry is waiting for that
      // manifest (Temporal no longer takes this attempt's result). Any other interruption ends here.
      if (ctx.cancellationSignal.aborted && !(timedOut && !abort.signal.aborted && outcome.exitCode === 0)) {
        throw ctx.cancellationSignal.reason;
      }

      if (outcome.exitCode !== 0) {
        const type = outcome.failureType ?? failureTypeForExit(outcome.exitCode, outcome.signal);
        const ran = outcome.jobName ?? name;
        const how =
          outcome.exitCode !== null
            ? `exited ${outcome.exitCode}`
            : outcome.signal
              ? `was killed by ${outcome.signal}`
              : 'did not finish';
        fail(
          type,
          `${input.stage} job ${ran} ${how}: ${outcome.reason || '(no reason written)'}\n--- last log lines (${logUri}) ---\n${outcome.logTail.slice(-10).join('\n')}`,
          { jobName: ran, exitCode: outcome.exitCode, reason: outcome.reason, logTail: outcome.logTail, logUri },
        );
      }
      const ran = outcome.jobName ?? name;
      const written = await validManifest(attempt);
      // Retryable: the retry sees the quarantine and redoes the work instead of adopting this finished job.
      if (!('manifest' in written)) {
        fail(FailureType.StageFailed, `${input.stage} job ${ran} exited 0 but ${written.reason}; the retry redoes it`);
      }
      return publish(written.manifest, ran);
    } finally {
      clearInterval(renewer);
      await releaseLease(store, output, attemptId, owner);
    }
  };
}
