/**
 * Issue 11, items 2-5 through the stage activity (MockActivityEnvironment, the real local executor running the
 * scripted stand-in jobs as real processes, the real file store): corrupt manifests, checksums on reuse,
 * racing runs of one stage key, and what the memo key digests.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createRunStage } from '../../activities/run-stage.js';
import { LocalExecutor } from '../../activities/executors/local.js';
import type { RunStageInput, StageResult } from '../../common/types.js';
import { fileRoot } from '../helpers/env.js';
import { SCRIPTED_JOBS, scripted } from '../helpers/scripted.js';
import { inject } from 'vitest';
import { openStore } from '../../activities/artifacts/open-store.js';
import { stageInput } from '../helpers/specs.js';

const runIn = (deps: ReturnType<typeof scripted>['deps'], input: RunStageInput) =>
  new MockActivityEnvironment().run(createRunStage(deps), input) as Promise<StageResult>;
const pathOf = (uri: string) => fileURLToPath(uri);
const files = (dir: string): string[] =>
  fs.existsSync(dir)
    ? (fs.readdirSync(dir, { recursive: true }) as string[])
        .filter((f) => fs.statSync(path.join(dir, f)).isFile())
        .sort()
    : [];

describe('stage integrity (issue 11)', () => {
  it('item 2: a corrupt published manifest is quarantined (kept), the stage redone once and published', async () => {
    const s = scripted();
    const root = fileRoot('corrupt');
    const first = await runIn(s.deps, stageInput(root));
    const torn = '{"schema": "tao.manifest/v1", "sta';
    // the published pointer torn, the attempt's own manifest intact: republished from the attempt, no job
    fs.writeFileSync(pathOf(first.manifest), torn);
    expect(await runIn(s.deps, stageInput(root))).toMatchObject({ reused: false, outputs: first.outputs });
    expect(s.launches()).toHaveLength(1);
    // both torn: the work is redone once
    fs.writeFileSync(pathOf(first.manifest), torn);
    fs.writeFileSync(pathOf(`${first.output}attempts/${first.jobName}/manifest.json`), torn);
    const second = await runIn(s.deps, stageInput(root));
    expect(second).toMatchObject({ reused: false, key: first.key });
    expect(s.launches()).toHaveLength(2);
    const kept = files(pathOf(first.output + 'quarantine/'));
    expect(kept.filter((f) => f.endsWith('manifest.json'))).toHaveLength(2);
    const q = path.join(
      pathOf(first.output + 'quarantine/'),
      kept.find((f) => f.endsWith('manifest.json'))!,
    );
    expect(fs.readFileSync(q, 'utf8')).toBe('{"schema": "tao.manifest/v1", "sta');
    expect(fs.readFileSync(path.join(path.dirname(q), 'reason.txt'), 'utf8')).toContain('not JSON');
    // and it stays done: a third run reuses the fresh manifest
    expect(await runIn(s.deps, stageInput(root))).toMatchObject({ reused: true });
    expect(s.launches()).toHaveLength(2);
  });

  it('item 4: a reused output whose bytes changed (same size) fails its checksum and the stage runs again', async () => {
    const s = scripted();
    const root = fileRoot('checksum');
    const first = await runIn(s.deps, stageInput(root));
    const shard = pathOf((first.outputs.prompts as string[])[0]!);
    fs.writeFileSync(shard, '[]\n'); // was "{}\n": same size, other bytes
    const second = await runIn(s.deps, stageInput(root));
    expect(second.reused).toBe(false);
    expect(s.launches()).toHaveLength(2);
    expect(fs.readFileSync(pathOf((second.outputs.prompts as string[])[0]!), 'utf8')).toBe('{}\n');
    const reasons = files(pathOf(first.output + 'quarantine/')).filter((f) => f.endsWith('reason.txt'));
    expect(reasons).toHaveLength(1);
    expect(fs.readFileSync(path.join(pathOf(first.output + 'quarantine/'), reasons[0]!), 'utf8')).toContain('sha256');
  });

  it('item 3 + faults: two rounds of one spec racing the same stage key: one job runs (the lease), the other reuses its published outputs', async () => {
    const s = scripted();
    s.setScript({ prepare: { steps: 2, sleep: 1 } });
    const root = fileRoot('race');
    const a = stageInput(root, { run: { name: 't', round: 1, workflowId: 'tao/t/a' } });
    const b = stageInput(root, { run: { name: 't', round: 1, workflowId: 'tao/t/b' } });
    const [ra, rb] = await Promise.all([runIn(s.deps, a), runIn(s.deps, b)]);
    expect(ra.key).toBe(rb.key);
    // the key's lease: the second run waited for the first one's manifest instead of launching its own job
    expect(s.launches()).toHaveLength(1);
    expect(ra.outputs).toEqual(rb.outputs); // both rounds go on with the one published attempt
    expect([ra.reused, rb.reused].sort()).toEqual([false, true]);
    const winner = ra.reused ? rb.jobName : ra.jobName;
    const attempts = pathOf(ra.output + 'attempts/');
    expect(files(path.join(attempts, winner))).toEqual(
      expect.arrayContaining(['manifest.json', 'prompts/shard-0000.jsonl', 'heldout.jsonl']),
    );
    // the waiting run wrote nothing: the winner's is the only attempt folder, and the lease is released
    expect(fs.readdirSync(attempts)).toEqual([winner]);
    expect(fs.existsSync(pathOf(ra.output + 'lease.json'))).toBe(false);
  });

  it('item 5: a file:// model folder is digested by content, not names and sizes', async () => {
    const s = scripted();
    const root = fileRoot('model');
    const model = pathOf(root) + '/model';
    fs.mkdirSync(model);
    fs.writeFileSync(model + '/config.json', '{"a":1}');
    fs.writeFileSync(model + '/model.safetensors', 'weights-v1');
    const input = () => stageInput(root, { inputs: { prompts: root + '/prompts.jsonl', model: root + '/model/' } });
    const first = await runIn(s.deps, input());
    fs.writeFileSync(model + '/model.safetensors', 'weights-v2'); // retrained in place: same names and sizes
    const second = await runIn(s.deps, input());
    expect(second.key).not.toBe(first.key);
    expect(second.reused).toBe(false);
  });

  it('item 5: a resource named only in the params (a SQL database, a reward-model folder) is digested', async () => {
    const s = scripted();
    const root = fileRoot('params');
    const db = pathOf(root) + '/shop.sqlite';
    fs.writeFileSync(db, 'db-v1');
    const rm = pathOf(root) + '/rm';
    fs.mkdirSync(rm);
    fs.writeFileSync(rm + '/w.bin', 'rm-v1');
    const input = () =>
      stageInput(root, {
        params: {
          onInvalid: 'fail',
          shards: 2,
          seed: 0,
          scoring: {
            scorers: [
              { name: 'sql', type: 'sql', weight: 1, params: { database: root + '/shop.sqlite' } },
              { name: 'rm', type: 'reward-model', weight: 1, params: { model: root + '/rm/' } },
            ],
          },
        },
      });
    const k1 = (await runIn(s.deps, input())).key;
    fs.writeFileSync(db, 'db-v2');
    const k2 = (await runIn(s.deps, input())).key;
    fs.writeFileSync(rm + '/w.bin', 'rm-v2');
    const k3 = (await runIn(s.deps, input())).key;
    expect(new Set([k1, k2, k3]).size).toBe(3);
    // a resource that does not exist fails before any job, naming where the params name it
    fs.rmSync(db);
    const err = await runIn(s.deps, input()).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'ArtifactMissing' });
    expect((err as Error).message).toContain('params.scoring.scorers.0.params.database');
  });

  it("item 5: a python verifier's source and the library versions are in the key (local executor)", async () => {
    const s = scripted();
    // a jobs folder with the scripted stand-in and a user verifier module on the jobs' PYTHONPATH
    const src = path.resolve('test-output', 'verifier-src', path.basename(pathOf(fileRoot('v'))));
    fs.cpSync(SCRIPTED_JOBS, src, { recursive: true });
    fs.writeFileSync(path.join(src, 'myverifier.py'), 'def check(prompt, text):\n    return 1.0\n');
    const executor = new LocalExecutor({ python: inject('python'), jobsSrc: src, store: openStore({}) });
    const deps = { ...s.deps, executors: { local: executor } };
    const root = fileRoot('verifier');
    const input = () =>
      stageInput(root, {
        params: {
          onInvalid: 'fail',
          shards: 2,
          seed: 0,
          scoring: { scorers: [{ name: 'v', type: 'python', weight: 1, params: { module: 'myverifier:check' } }] },
        },
      });
    const k1 = (await runIn(deps, input())).key;
    fs.writeFileSync(path.join(src, 'myverifier.py'), 'def check(prompt, text):\n    return 0.0\n');
    const k2 = (await runIn(deps, input())).key;
    expect(k2).not.toBe(k1);
    const runtime = await executor.runtimeVersion('prepare', []);
    expect(runtime).toMatch(/"jsonschema==[0-9.]+"/); // installed distributions with their versions
    // another runtime (say, an upgraded library) is another key: the same executor with one method replaced
    const upgraded = Object.assign(Object.create(executor) as LocalExecutor, {
      runtimeVersion: async () => runtime.replace(/jsonschema==[0-9.]+/, 'jsonschema==0.0.0'),
    });
    const k3 = (await runIn({ ...s.deps, executors: { local: upgraded } }, input())).key;
    expect(k3).not.toBe(k2);
  });

  it("item 5: a judge's served model identity is in the key (stand-in OpenAI-compatible /models)", async () => {
    const s = scripted();
    let root = 'judge-v1';
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      // vLLM's shape: `created` is the request time (left out of the key), `root` the served model's path
      res.end(JSON.stringify({ data: [{ id: 'judge', object: 'model', created: Date.now(), root }] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const dir = fileRoot('judge');
      const input = () =>
        stageInput(dir, {
          params: {
            onInvalid: 'fail',
            shards: 2,
            seed: 0,
            scoring: { scorers: [{ name: 'j', type: 'judge', weight: 1, params: { endpoint, model: 'judge' } }] },
          },
        });
      const k1 = (await runIn(s.deps, input())).key;
      const again = await runIn(s.deps, input());
      expect(again).toMatchObject({ key: k1, reused: true });
      root = 'judge-v2'; // another model served under the same name
      expect((await runIn(s.deps, input())).key).not.toBe(k1);
    } finally {
      server.close();
    }
  });
});
