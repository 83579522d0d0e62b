/**
 * The stage contract inside the built image, for real: scripts/k8s/build-images.sh builds the jobs-cpu image
 * from k8s/images/jobs-cpu.Dockerfile (on a local Python base from Debian packages; cached by content), then
 * tests/fixtures/image-contract/round_in_image.py runs prepare -> generate -> score -> dataset -> train ->
 * evaluate on the tiny model, each stage as `docker run` of the image, and the contract's failure exits.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { buildImages } from '../helpers/real-node.js';

const run = promisify(execFile);
let image: string;
beforeAll(async () => {
  image = (await buildImages(['jobs-cpu']))['jobs-cpu']!;
}, 60 * 60_000);

interface Result {
  stages: { stage: string; output: string; exit: number; reason: string }[];
  evaluate: Record<string, unknown>;
  report: string;
  failures: { case: string; exit: number; reason: string }[];
}

describe('the stage contract inside the jobs-cpu image (docker run, tiny model)', () => {
  it('runs a whole round stage by stage in the image, and fails with 64/65 and a termination message', async () => {
    const work = path.resolve('test-output', `image-contract-${process.pid}`);
    fs.rmSync(work, { recursive: true, force: true });
    const resultFile = path.join(work, '..', `image-contract-${process.pid}.json`);
    const docker = fs.existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
    try {
      await run(inject('python'), ['tests/fixtures/image-contract/round_in_image.py', image, work, resultFile], {
        env: { ...process.env, DOCKER: docker },
        maxBuffer: 64 << 20,
        timeout: 30 * 60_000,
      });
      const result = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as Result;
      expect(result.stages.map((s) => s.stage)).toEqual([
        'prepare',
        'generate',
        'score',
        'generate',
        'score',
        'dataset',
        'train',
        'evaluate',
      ]);
      expect(result.stages.every((s) => s.exit === 0 && s.reason === '')).toBe(true);
      expect(fs.readFileSync(new URL(result.report), 'utf8')).toContain('| tuned |');
      expect(result.evaluate).toHaveProperty('improvement');
      const [invalid, missing] = result.failures;
      expect(invalid).toMatchObject({ exit: 64 });
      expect(invalid!.reason).toMatch(/^invalid stage spec: .*'output' is a required property/);
      expect(missing).toMatchObject({ exit: 65 });
      expect(missing!.reason).toMatch(/^bad input: file:\/\/.*no-such-prompts\.jsonl: input file does not exist$/);
    } finally {
      // containers run with --rm and are gone when the stages end; an interrupted run's are removed here
      const { stdout } = await run(docker, ['ps', '-aq', '--filter', `name=tao-contract-`]);
      const left = stdout.trim().split('\n').filter(Boolean);
      if (left.length) await run(docker, ['rm', '-f', ...left]);
      expect(left).toEqual([]);
    }
  });

  it.each([
    ['generate', 'vllm 0.33.0'],
    ['score-vllm', 'vllm 0.33.0'],
  ])('the %s image (vLLM, too large to build here) has pins that resolve for its platform', async (name, expected) => {
    // a dependency resolution against the index for CPython 3.12 / manylinux x86_64, without building
    const { stdout } = await run('bash', ['scripts/k8s/check-image-deps.sh', name], { timeout: 5 * 60_000 });
    expect(stdout).toMatch(new RegExp(`^${name}: \\d+ packages resolve \\(torch [0-9.]+, ${expected}`, 'm'));
  });
});
