/**
 * Issue 11, item 4: checksums are checked. Reuse re-hashes small files only; `tao verify` and promotion hash
 * every file, models included, and a damaged stage is quarantined so it runs again. Real file store, the real
 * CLI as a process, the promotion activity as the worker runs it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../activities/artifacts/file-store.js';
import { checkManifest, REUSE_HASH_MAX_BYTES, type Manifest } from '../../activities/artifacts/manifest.js';
import { attemptPrefix, publishAttempt } from '../../activities/artifacts/publish.js';
import { joinUri } from '../../activities/artifacts/store.js';
import { createRegistryActivities } from '../../activities/promote.js';
import { fileRoot } from '../helpers/env.js';

const store = new FileStore();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A published train stage whose merged model is larger than what reuse re-hashes. */
async function trainStage(root: string, key: string) {
  const output = joinUri(root, 'stages/train', key) + '/';
  const weights = Buffer.alloc(REUSE_HASH_MAX_BYTES + 1024, 7);
  const config = Buffer.from('{"model_type":"llama"}');
  const attempt = attemptPrefix(output, 'a1');
  await store.put(joinUri(attempt, 'merged/model.safetensors'), weights);
  await store.put(joinUri(attempt, 'merged/config.json'), config);
  const m: Manifest = {
    schema: 'tao.manifest/v1',
    stage: 'train',
    key,
    outputs: { merged: 'merged/' },
    files: [
      { path: 'merged/config.json', size: config.length, sha256: sha(config) },
      { path: 'merged/model.safetensors', size: weights.length, sha256: sha(weights) },
    ],
    records: { in: 1, out: 1 },
    metrics: {},
    producer: { name: 't', version: '0' },
    timings: { startedAt: 0, finishedAt: 1, durationS: 1 },
  };
  expect(await publishAttempt(store, output, 'a1', m)).toBe(true);
  const weightsFile = fileURLToPath(joinUri(attempt, 'merged/model.safetensors'));
  const rot = () => {
    const fd = fs.openSync(weightsFile, 'r+');
    fs.writeSync(fd, Buffer.from([8]), 0, 1, 12345); // one byte, same size
    fs.closeSync(fd);
  };
  return { output, merged: joinUri(attempt, 'merged') + '/', rot };
}

describe('verification of published outputs (issue 11, item 4)', () => {
  it('tao verify re-hashes everything, reports the damaged stage, exits 1 and quarantines it so it runs again', async () => {
    const root = fileRoot('verify');
    const good = await trainStage(root, 'k-good');
    const bad = await trainStage(root, 'k-bad');
    bad.rot();
    // reuse checks the size of a large file only: the damage is invisible there
    expect(await checkManifest(store, bad.output, { stage: 'train', key: 'k-bad' })).toMatchObject({ valid: true });
    const cli = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', 'verify', root]).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`DAMAGED  ${bad.output}`);
    expect(cli.stdout).toContain('merged/model.safetensors has sha256');
    expect(cli.stdout).toContain(`ok       ${good.output}`);
    expect(cli.stdout).toContain('2 stage(s) verified, 1 damaged');
    // quarantined: the next round that needs this stage runs it again
    expect(await checkManifest(store, bad.output, { stage: 'train', key: 'k-bad' })).toMatchObject({
      valid: false,
      present: false,
    });
    expect((await store.list(joinUri(bad.output, 'quarantine') + '/')).map((o) => o.uri.split('/').pop())).toEqual([
      'manifest.json',
      'reason.txt',
    ]);
  });

  it('promotion verifies the model in full first: a damaged model is never promoted', async () => {
    const root = fileRoot('promote');
    const { merged, rot } = await trainStage(root, 'k1');
    const { promoteModel } = createRegistryActivities({ storeFor: () => store, baseDir: process.cwd() });
    const input = {
      artifacts: { uri: root },
      registry: joinUri(root, 'registry'),
      runName: 'r',
      round: 1,
      modelUri: merged,
      baseModelUri: 'tiny://t',
      workflowId: 'tao/r/round-1',
      evaluation: {} as never,
    };
    rot();
    await expect(promoteModel(input)).rejects.toMatchObject({
      type: 'ArtifactMissing',
      nonRetryable: true,
      message: expect.stringContaining('merged/model.safetensors has sha256'),
    });
    expect(await store.get(joinUri(root, 'registry/r/current.json'))).toBeNull();
  });

  it('promotion of an intact model writes the pointer', async () => {
    const root = fileRoot('promote-ok');
    const { merged } = await trainStage(root, 'k1');
    const { promoteModel } = createRegistryActivities({ storeFor: () => store, baseDir: process.cwd() });
    const r = await promoteModel({
      artifacts: { uri: root },
      registry: joinUri(root, 'registry'),
      runName: 'r',
      round: 1,
      modelUri: merged,
      baseModelUri: 'tiny://t',
      workflowId: 'tao/r/round-1',
      evaluation: {} as never,
    });
    expect(r.pointer).toBe(joinUri(root, 'registry/r/current.json'));
  });
});
