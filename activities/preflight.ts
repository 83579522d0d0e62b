/**
 * `checkStore`: the store preflight at the start of a round (and of a flywheel run). It reaches the artifact
 * root and the round's inputs with the spec's own store settings before any job runs, so a wrong endpoint, a
 * missing bucket or rejected credentials fail the round at once, named, instead of after three attempts of GPU
 * work (issue 13). What it checks:
 *   - the artifact root is readable (a listing: a missing bucket answers NoSuchBucket here, where some S3 servers
 *     would create it on a write) and writable (a probe object is created and deleted under `<root>/.tao-preflight/`);
 *   - each input exists: an object (prompts file, held-out file) or, for a prefix (a model folder, the
 *     flywheel's log prefix), a listing that answers.
 * A misconfiguration (unknown host, refused connection, missing bucket, rejected or missing credentials, a missing
 * input) is the non-retryable `StoreMisconfigured`; anything else (5xx, timeouts) stays retryable.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { randomUUID } from 'node:crypto';
import { FailureType } from '../common/errors.js';
import type { RunSpec } from '../common/run-spec.js';
import type { CheckStoreInput } from '../common/types.js';
import { joinUri, resolveUri, StoreError, type ArtifactStore } from './artifacts/store.js';

export interface PreflightDeps {
  storeFor(artifacts: RunSpec['artifacts']): ArtifactStore;
  baseDir: string;
}

export interface CheckStoreResult {
  root: string;
  checked: string[];
}

/** Where an S3 client sends requests for these settings (what the SDK would use), for messages. */
export function endpointOf(artifacts: RunSpec['artifacts']): string {
  return artifacts.s3?.endpoint ?? process.env.AWS_ENDPOINT_URL ?? 'the AWS default endpoint';
}

/** Why a store operation failed, in words, when the cause is a misconfiguration; undefined when it may pass. */
export function misconfiguration(e: unknown): string | undefined {
  const cause = (e instanceof StoreError ? e.cause : e) as
    | { name?: string; code?: string; message?: string; hostname?: string; $metadata?: { httpStatusCode?: number } }
    | undefined;
  const code = cause?.code ?? (cause as { errno?: string } | undefined)?.errno;
  const name = cause?.name ?? '';
  const status = cause?.$metadata?.httpStatusCode;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `unknown host${cause?.hostname ? ` ${cause.hostname}` : ''}`;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (name === 'NoSuchBucket') return 'the bucket does not exist';
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken'].includes(name))
    return `credentials rejected (${name})`;
  if (status === 403) return `credentials rejected (HTTP 403 ${name})`;
  if (name === 'CredentialsProviderError')
    return 'no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or another source of the SDK default chain)';
  if (e instanceof StoreError && e.code === 'Invalid') return e.message;
  return undefined;
}

export function createPreflightActivities(deps: PreflightDeps) {
  return {
    async checkStore(input: CheckStoreInput): Promise<CheckStoreResult> {
      const store = deps.storeFor(input.artifacts);
      const root = resolveUri(input.artifacts.uri, deps.baseDir);
      const where = (uri: string) =>
        uri.startsWith('s3://')
          ? `${uri} (bucket ${uri.slice(5).split('/')[0]}, endpoint ${endpointOf(input.artifacts)})`
          : uri;
      const fail = (what: string, uri: string, e: unknown) => {
        const reason = misconfiguration(e);
        const message = `store preflight: ${what} ${where(uri)}: ${reason ?? (e as Error).message}`;
        throw ApplicationFailure.create({
          type: reason ? FailureType.StoreMisconfigured : FailureType.StoreUnavailable,
          message,
          nonRetryable: !!reason,
        });
      };

      const probe = joinUri(root, '.tao-preflight', `${randomUUID()}.txt`);
      try {
        // a listing first: some S3 servers (SeaweedFS) create a missing bucket on the first write
        await store.list(joinUri(root, '.tao-preflight') + '/');
        await store.put(probe, 'tao store preflight: safe to delete\n');
        await store.delete(probe);
      } catch (e) {
        fail('cannot write the artifact root', root, e);
      }

      const checked = [root];
      for (const [name, raw] of Object.entries(input.inputs)) {
        if (raw.startsWith('tiny://')) continue; // built on the spot by prepare
        const uri = resolveUri(raw, deps.baseDir);
        try {
          const found = uri.endsWith('/') ? (await store.list(uri)).length > 0 : (await store.head(uri)) !== null;
          if (!found) {
            throw ApplicationFailure.create({
              type: FailureType.StoreMisconfigured,
              message: `store preflight: ${name} ${where(uri)} does not exist`,
              nonRetryable: true,
            });
          }
        } catch (e) {
          if (e instanceof ApplicationFailure) throw e;
          fail(`cannot read ${name}`, uri, e);
        }
        checked.push(uri);
      }
      for (const [name, raw] of Object.entries(input.reachable ?? {})) {
        const uri = resolveUri(raw, deps.baseDir);
        try {
          await store.list(uri.endsWith('/') ? uri : uri + '/');
        } catch (e) {
          fail(`cannot list ${name}`, uri, e);
        }
        checked.push(uri);
      }
      return { root, checked };
    },
  };
}
