/**
 * Promotion: a conditional write of a small alias object, the model registry pointer (docs/design.md#rule-8),
 * after the model's files are verified in full (every size and sha256 its train manifest recorded; a damaged
 * model is quarantined and never promoted).
 * `<registry>/<run name>/current.json` names the promoted model; each promotion is also kept as
 * `<registry>/<run name>/history/round-<n>.json`. The pointer is replaced with If-Match on the version that
 * was read, so two rounds promoting at once cannot silently overwrite each other.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { FailureType } from '../common/errors.js';
import type { PromoteInput, PromoteResult, RoundResult } from '../common/types.js';
import { joinUri, resolveUri, StoreError, type ArtifactStore } from './artifacts/store.js';
import { stagePrefixOf, verifyStage } from './artifacts/verify.js';

export interface RegistryDeps {
  storeFor(artifacts: PromoteInput['artifacts']): ArtifactStore;
  baseDir: string;
}

export interface RegistryPointer {
  runName: string;
  round: number;
  modelUri: string;
  adapterUri?: string;
  baseModelUri: string;
  workflowId: string;
  promotedAt: string;
  evaluation: PromoteInput['evaluation'];
}

export function pointerUri(registry: string, runName: string): string {
  return joinUri(registry, runName, 'current.json');
}

export function createRegistryActivities(deps: RegistryDeps) {
  async function promoteModel(input: PromoteInput): Promise<PromoteResult> {
    const store = deps.storeFor(input.artifacts);
    const registry = resolveUri(input.registry, deps.baseDir);
    const uri = pointerUri(registry, input.runName);
    const pointer: RegistryPointer = {
      runName: input.runName,
      round: input.round,
      modelUri: input.modelUri,
      adapterUri: input.adapterUri,
      baseModelUri: input.baseModelUri,
      workflowId: input.workflowId,
      promotedAt: new Date().toISOString(),
      evaluation: input.evaluation,
    };
    // The model must be what its stage recorded, byte for byte, before anyone is pointed at it.
    for (const uri of [input.modelUri, input.adapterUri]) {
      if (!uri || !stagePrefixOf(uri)) continue; // a model outside the stages (nothing recorded to check)
      const verdict = await verifyStage(store, uri);
      if (!verdict.ok) {
        throw ApplicationFailure.create({
          type: FailureType.ArtifactMissing,
          nonRetryable: true,
          message:
            `not promoting ${input.modelUri}: its outputs are damaged (${verdict.problem}); the manifest was ` +
            `quarantined (${verdict.quarantined ?? 'nothing to move'}), so rerunning the round trains again`,
        });
      }
    }
    const body = JSON.stringify(pointer, null, 2);
    await store.put(joinUri(registry, input.runName, 'history', `round-${input.round}.json`), body);
    const current = await store.head(uri);
    const previous = current ? (JSON.parse((await store.get(uri))!.toString('utf8')) as RegistryPointer) : null;
    if (previous && previous.workflowId === input.workflowId && previous.modelUri === input.modelUri) {
      return { pointer: uri, previousModelUri: previous.modelUri }; // a retried promotion: already done
    }
    try {
      await store.put(uri, body, current ? { ifMatch: current.etag } : { ifNoneMatch: true });
    } catch (e) {
      if (e instanceof StoreError && e.code === 'PreconditionFailed') {
        // Someone promoted in between: retry the activity, which re-reads the pointer.
        throw ApplicationFailure.retryable(`${uri} changed while promoting; retrying`, FailureType.StoreUnavailable);
      }
      throw e;
    }
    return { pointer: uri, previousModelUri: previous?.modelUri ?? null };
  }

  /** The currently promoted model of a run, or null (used by the flywheel and `tao status`). */
  async function readPromoted(input: { registry: string; runName: string; artifacts: PromoteInput['artifacts'] }) {
    const store = deps.storeFor(input.artifacts);
    const data = await store.get(pointerUri(resolveUri(input.registry, deps.baseDir), input.runName));
    return data ? (JSON.parse(data.toString('utf8')) as RegistryPointer) : null;
  }

  /** Keeps the round's result beside its artifacts: `<artifacts>/runs/<name>/round-<n>/result.json`. */
  async function recordRound(input: { result: RoundResult; artifacts: PromoteInput['artifacts'] }): Promise<string> {
    const store = deps.storeFor(input.artifacts);
    const root = resolveUri(input.artifacts.uri, deps.baseDir);
    const uri = joinUri(root, 'runs', input.result.runName, `round-${input.result.round}`, 'result.json');
    await store.put(uri, JSON.stringify(input.result, null, 2));
    return uri;
  }

  return { promoteModel, readPromoted, recordRound };
}
