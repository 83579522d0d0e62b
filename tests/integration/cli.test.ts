/**
 * The command lines users type: `tao validate`, `tao run`, `tao status`, and the real `temporal` CLI
 * starting and querying a round from a spec file (the workflow input is the spec document itself).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { RoundResult } from '../../common/types.js';
import { venvBin } from '../..//scripts/dev/tools.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { uniqueQueue, withWorker } from '../helpers/temporal.js';

const run = promisify(execFile);
/** The real `temporal` CLI against the test run's server. */
const temporalCli = (args: string[]) => run(venvBin('temporal'), [...args, '--address', inject('temporalAddress')]);

async function tao(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', ...args], {
      env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

let specFile: string;
let root: string;
beforeAll(() => {
  root = fileRoot('cli');
  specFile = path.join(new URL(root).pathname, 'spec.json');
  fs.writeFileSync(specFile, JSON.stringify(roundSpec(root, { name: 'cli' }), null, 2));
});

describe('operator updates from the temporal CLI and tao', () => {
  it('a failed stage is retried with `temporal workflow update execute`; a bad action is rejected by `tao skip`', async () => {
    const s = scripted();
    s.setScript({ train: { exit: 65, reason: 'bad dataset' } });
    const queue = uniqueQueue('cli-op');
    const id = `tao/cli/${queue}`;
    await withWorker(queue, s.deps, async () => {
      await temporalCli([
        'workflow',
        'start',
        '--task-queue',
        queue,
        '--type',
        'taoRound',
        '--workflow-id',
        id,
        '--input-file',
        specFile,
      ]);
      let waiting = '';
      for (let i = 0; i < 150 && !waiting.includes('"train"'); i++) {
        waiting = (
          await temporalCli(['workflow', 'query', '--workflow-id', id, '--type', 'progress', '--output', 'json'])
        ).stdout;
        if (!(JSON.parse(waiting).queryResult[0].waiting ?? []).length) waiting = '';
        await new Promise((r) => setTimeout(r, 200));
      }
      const skip = await tao(['skip', id, 'train']);
      expect(skip.code).toBe(2);
      expect(skip.stderr).toContain('train cannot be skipped safely');
      s.setScript({});
      const { stdout } = await temporalCli([
        'workflow',
        'update',
        'execute',
        '--workflow-id',
        id,
        '--name',
        'retryStage',
        '--input',
        '{"stage": "train"}',
      ]);
      expect(stdout).toContain('train');
      const { stdout: result } = await temporalCli(['workflow', 'result', '--workflow-id', id, '--output', 'json']);
      expect(result).toContain('"promoted": true');
    });
  });
});

describe('tao validate', () => {
  it('accepts a valid spec', async () => {
    const r = await tao(['validate', 'tests/fixtures/specs/valid/full-s3.json']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid (run support-bot, round 3, 8 shard(s))');
  });

  it('rejects an invalid spec with exit 2 and every problem as path: reason', async () => {
    const r = await tao(['validate', 'tests/fixtures/specs/invalid/bad-uris-and-ranges.json']);
    expect(r.code).toBe(2);
    for (const p of [
      'name: ',
      'prompts.uri: ',
      'generation.samplesPerPrompt: ',
      'generation.shards: ',
      'artifacts.uri: ',
    ]) {
      expect(r.stderr).toContain(p);
    }
  });

  it('names the line of a YAML syntax error', async () => {
    const file = path.join(new URL(root).pathname, 'broken.yaml');
    fs.writeFileSync(file, 'apiVersion: tao/v1\nname: x\nprompts: {uri: "file:a.jsonl"\n');
    const r = await tao(['validate', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.yaml:\n\s+line \d+:/);
  });

  it('names a missing file', async () => {
    const r = await tao(['validate', 'no/such/spec.json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no/such/spec.json');
  });
});

describe('tao schedule create refuses bad input before creating anything', () => {
  it('names each bad field and its reason', async () => {
    const file = path.join(new URL(root).pathname, 'flywheel-bad.json');
    fs.writeFileSync(file, JSON.stringify({ apiVersion: 'tao/v1', name: 'Bad!', source: { uri: 'http://x/' } }));
    const r = await tao([
      'schedule',
      'create',
      file,
      '--cron',
      'every night',
      '--timezone',
      'Mars/Olympus',
      '--overlap',
      'all',
    ]);
    expect(r.code).toBe(2);
    for (const p of [
      'name: ',
      'source.uri: ',
      'template: ',
      '--cron: "every night" is not a 5-field cron expression',
      '--timezone: "Mars/Olympus"',
      '--overlap: "all"',
    ]) {
      expect(r.stderr).toContain(p);
    }
  });
});

describe('starting rounds from the command line', () => {
  it('tao run --json prints the result; tao status shows it; the temporal CLI starts and queries a round', async () => {
    const s = scripted();
    const queue = uniqueQueue('cli');
    await withWorker(queue, s.deps, async () => {
      const ran = await tao(['run', specFile, '--json', '--workflow-id', `tao/cli/${queue}`], {
        TAO_TASK_QUEUE: queue,
      });
      expect(ran.stderr).toContain('Temporal Web UI: http://');
      const result = JSON.parse(ran.stdout) as RoundResult;
      expect(result).toMatchObject({ runName: 'cli', promoted: true });

      const status = await tao(['status', `tao/cli/${queue}`]);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain('COMPLETED');
      expect(status.stdout).toContain('PROMOTED');

      // A user's `temporal` CLI profile is enough: no TEMPORAL_ADDRESS, only the profile file `temporal config set` wrote
      const profileFile = path.join(new URL(root).pathname, 'temporal.toml');
      await run(
        venvBin('temporal'),
        ['config', 'set', '--profile', 'tao-test', '--prop', 'address', '--value', inject('temporalAddress')],
        {
          env: { ...process.env, TEMPORAL_CONFIG_FILE: profileFile },
        },
      );
      const { TEMPORAL_ADDRESS: _address, ...withoutAddress } = process.env;
      const viaProfile = await run(
        process.execPath,
        ['--import', 'tsx', 'scripts/tao.ts', 'status', `tao/cli/${queue}`],
        {
          env: { ...withoutAddress, TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'tao-test' },
        },
      );
      expect(viaProfile.stdout).toContain('COMPLETED');

      // The real temporal CLI: the spec file is the workflow input, unchanged.
      const id = `tao/cli/${queue}-temporal`;
      await temporalCli([
        'workflow',
        'start',
        '--task-queue',
        queue,
        '--type',
        'taoRound',
        '--workflow-id',
        id,
        '--input-file',
        specFile,
      ]);
      const { stdout: resultJson } = await temporalCli(['workflow', 'result', '--workflow-id', id, '--output', 'json']);
      expect(resultJson).toContain('"promoted": true');
      const { stdout: progress } = await temporalCli([
        'workflow',
        'query',
        '--workflow-id',
        id,
        '--type',
        'progress',
        '--output',
        'json',
      ]);
      expect(JSON.parse(progress)).toMatchObject({ queryResult: [{ stage: 'done', percent: 100 }] });
      const { stdout: described } = await temporalCli([
        'workflow',
        'describe',
        '--workflow-id',
        id,
        '--output',
        'json',
      ]);
      expect(JSON.parse(described).workflowExecutionInfo.status).toBe('WORKFLOW_EXECUTION_STATUS_COMPLETED');
      const { stdout: shown } = await temporalCli(['workflow', 'show', '--workflow-id', id]);
      expect(shown).toContain('ActivityTaskCompleted');
    });
  });
});
