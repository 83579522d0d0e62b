/**
 * `runStage`: one stage (or shard) = one activity = one external job (docs/design.md#rule-2).
 *
 * 1. Resolve inputs; digest the external ones (prompts, base model) so the memo key changes with content.
 * 2. Memo key = sha256(stage, shard, params, inputs, digests, code version); output prefix
 *    `<artifacts>/stages/<stage>/<key>/`. A valid manifest there means the stage is done: return it
 *    without launching anything (resume, reruns, cross-run cache).
 * 3. Otherwise write the stage spec next to the outputs, run the job through the executor while
 *    heartbeating its progress, and return the references from the manifest the job wrote last.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { FailureType, NON_RETRYABLE, failureTypeForExit } from '../common/errors.js';
import { canonicalJson } from '../common/hash.js';
import type { RunStageInput, StageResult } from '../common/types.js';
import { checkManifest, resolveOutputs } from './artifacts/manifest.js';
import { joinUri, resolveUri, StoreError, type ArtifactStore } from './artifacts/store.js';
import type { Executor, JobProgress, StopReason } from './executors/executor.js';
import { jobName } from './job-name.js';

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

/** Content digest of an input that no stage produced (prompts file, base model directory). */
async function digestExternal(store: ArtifactStore, name: string, uri: string): Promise<string> {
  if (uri.startsWith('tiny://')) return sha256(uri);
  const object = await store.head(uri);
  if (object) {
    const data = await store.get(uri);
    return sha256(data ?? '');
  }
  const listing = await store.list(uri.endsWith('/') ? uri : uri + '/');
  if (listing.length === 0) fail(FailureType.ArtifactMissing, `input ${name}: ${uri} does not exist`);
  return sha256(listing.map((o) => `${o.uri.slice(uri.length)}:${o.size}:${o.etag ?? ''}`).join('\n'));
}

function stopReason(ctx: Context): StopReason {
  const d = ctx.cancellationDetails;
  // the details come with the cancel; the signal's CancelledFailure names the same reason as its message
  const reason = String((ctx.cancellationSignal.reason as Error | undefined)?.message ?? '');
  if (d?.cancelRequested || reason === 'CANCELLED') return 'cancelled';
  if (d?.notFound || reason === 'NOT_FOUND') return 'run-closed';
  if (d?.workerShutdown || reason === 'WORKER_SHUTDOWN') return 'worker-shutdown';
  return 'timeout';
}

export function createRunStage(deps: StageDeps) {
  return async function runStage(input: RunStageInput): Promise<StageResult> {
    const ctx = Context.current();
    const started = Date.now();
    const store = deps.storeFor(input.artifacts);
    const root = resolveUri(input.artifacts.uri, deps.baseDir);
    const stagesRoot = joinUri(root, 'stages') + '/';
    const resolve = (u: string) => resolveUri(u, deps.baseDir);
    const inputs = Object.fromEntries(
      Object.entries(input.inputs).map(([k, v]) => [k, Array.isArray(v) ? v.map(resolve) : resolve(v)]),
    );

    const digests: Record<string, string> = {};
    for (const [name, value] of Object.entries(inputs)) {
      for (const uri of Array.isArray(value) ? value : [value]) {
        if (!uri.startsWith(stagesRoot)) {
          digests[uri] = await guard(`input ${name}`, () => digestExternal(store, name, uri));
        }
      }
    }
    const key = sha256(
      canonicalJson({
        stage: input.stage,
        shard: input.shard,
        params: input.params,
        inputs,
        digests,
        code: deps.codeVersion,
      }),
    ).slice(0, 20);
    const output = joinUri(stagesRoot, input.stage, key) + '/';
    const nameForGeneration = (generation: number) =>
      jobName({ ...input.run, stage: input.stage, shard: input.shard?.index ?? null, generation });
    const name = nameForGeneration(0);

    const result = (
      manifest: Awaited<ReturnType<typeof checkManifest>> & { valid: true },
      reused: boolean,
      ran = name,
    ): StageResult => ({
      stage: input.stage,
      shard: input.shard?.index ?? null,
      key,
      output,
      manifest: joinUri(output, 'manifest.json'),
      outputs: resolveOutputs(output, manifest.manifest.outputs),
      records: manifest.manifest.records,
      metrics: manifest.manifest.metrics,
      durationS: reused ? manifest.manifest.timings.durationS : (Date.now() - started) / 1000,
      reused,
      jobName: ran,
    });

    const existing = await guard('manifest', () => checkManifest(store, output, { stage: input.stage, key }));
    if (existing.valid) return result(existing, true);

    const executor = deps.executors[input.executor.type];
    if (!executor)
      fail(FailureType.InvalidRunSpec, `executor "${input.executor.type}" is not configured on this worker`);

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
      output,
      store: s3 ? { s3: { endpoint: s3.endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle } } : {},
      inputs,
      params: input.params,
    };
    const specUri = joinUri(output, 'stage-spec.json');
    await guard('stage spec', () => store.put(specUri, JSON.stringify(spec, null, 2)));
    const logUri = joinUri(output, 'logs', `attempt-${ctx.info.attempt}.log`);

    // Heartbeat on every progress event and at least every few seconds, so cancellation reaches us and the
    // server sees the worker alive even while a job is silent (e.g. loading a model).
    let last: JobProgress = { phase: 'starting' };
    const beat = () => ctx.heartbeat({ jobName: name, logUri, ...last });
    const ticker = setInterval(beat, deps.heartbeatEveryMs ?? 5000);
    const abort = new AbortController();
    const onCancel = () => abort.abort(stopReason(ctx));
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
      clearInterval(ticker);
      ctx.cancellationSignal.removeEventListener('abort', onCancel);
    }
    if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;

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
    const written = await guard('manifest', () => checkManifest(store, output, { stage: input.stage, key }));
    if (!written.valid) fail(FailureType.ArtifactMissing, `${input.stage} job ${name} exited 0 but ${written.reason}`);
    return result(written, false, outcome.jobName);
  };
}
