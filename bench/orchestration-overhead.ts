/**
 * Orchestration overhead: the same stage commands run (a) by the taoRound workflow with the local executor
 * and (b) back to back by a plain script with the same parallelism (shards in parallel, score right after
 * its shard's generate), in one process, on the demo round. Reports wall-time ratio workflow / plain and the
 * per-stage transition latency (a job's exit to the next job's spawn). Order: workflow, plain, workflow, so
 * a warm-cache advantage cannot hide in one side.
 *
 *   npm run bench [-- --spec examples/demo/round.json]
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROUND_WORKFLOW } from '../common/constants.js';
import type { RunSpecInput } from '../common/run-spec.js';
import type { RoundResult } from '../common/types.js';
import { benchHarness } from './harness.js';
import { defaultPython, JOBS_SRC } from '../workers/config.js';

const specFile = process.argv.includes('--spec')
  ? process.argv[process.argv.indexOf('--spec') + 1]!
  : 'examples/demo/round.json';
const demo = JSON.parse(fs.readFileSync(specFile, 'utf8')) as RunSpecInput;
const out = path.resolve('test-output', 'bench', randomUUID().slice(0, 8));
fs.mkdirSync(out, { recursive: true });

const { client, deps, worker, close } = await benchHarness(out, 27233, 'bench');

async function viaWorkflow(label: string) {
  const root = pathToFileURL(path.join(out, label)).href;
  const from = deps.local.timeline.length;
  const t0 = Date.now();
  const result = (await client.workflow.execute(ROUND_WORKFLOW, {
    taskQueue: 'bench',
    workflowId: `bench-${label}-${randomUUID().slice(0, 6)}`,
    args: [{ ...demo, artifacts: { uri: root } }],
  })) as RoundResult;
  const wall = (Date.now() - t0) / 1000;
  if (result.reusedStages.length) throw new Error('benchmark round reused stages: not a fair measurement');
  return { wall, root, result, jobs: deps.local.timeline.slice(from) };
}

function runJob(stage: string, specUri: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(defaultPython(), ['-m', 'tao_jobs', stage, '--spec', specUri], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        PYTHONPATH: JOBS_SRC,
        HF_HUB_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
        TOKENIZERS_PARALLELISM: 'false',
        TAO_TERMINATION_LOG: path.join(out, 'reason'),
      },
    });
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${stage} exited ${code}`))));
  });
}

/** The plain baseline: the workflow's own stage specs, re-rooted to a fresh directory, run by a script. */
async function viaScript(template: string, label: string) {
  const root = pathToFileURL(path.join(out, label)).href;
  const specs = new Map<string, string[]>();
  for (const stage of ['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate']) {
    const dir = new URL(`${template}/stages/${stage}/`);
    const keys = fs.readdirSync(dir).filter((k) => fs.existsSync(new URL(`${k}/stage-spec.json`, dir)));
    const list = keys.map((k) => {
      const text = fs.readFileSync(new URL(`${k}/stage-spec.json`, dir), 'utf8').replaceAll(template, root);
      const spec = JSON.parse(text) as { shard: { index: number } | null };
      const file = path.join(new URL(root).pathname, 'specs', `${stage}-${k}.json`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      return { index: spec.shard?.index ?? 0, uri: pathToFileURL(file).href };
    });
    specs.set(
      stage,
      list.sort((a, b) => a.index - b.index).map((s) => s.uri),
    );
  }
  const t0 = Date.now();
  await runJob('prepare', specs.get('prepare')![0]!);
  await Promise.all(
    specs.get('generate')!.map(async (g, i) => {
      await runJob('generate', g);
      await runJob('score', specs.get('score')![i]!);
    }),
  );
  for (const stage of ['dataset', 'train', 'evaluate']) await runJob(stage, specs.get(stage)![0]!);
  return { wall: (Date.now() - t0) / 1000 };
}

/** Exit of a job to spawn of the job that waited for it, for each dependency edge of the round. */
function transitions(jobs: typeof deps.local.timeline) {
  const by = (stage: string, shard: number | null = null) =>
    jobs.find((j) => j.stage === stage && (shard === null || j.shard === shard))!;
  const shards = jobs.filter((j) => j.stage === 'generate').map((j) => j.shard!);
  const edges: [string, number][] = [];
  for (const s of shards) {
    edges.push([`prepare → generate[${s}]`, by('generate', s).spawnedAt - by('prepare').exitedAt!]);
    edges.push([`generate[${s}] → score[${s}]`, by('score', s).spawnedAt - by('generate', s).exitedAt!]);
  }
  const lastScore = Math.max(...jobs.filter((j) => j.stage === 'score').map((j) => j.exitedAt!));
  edges.push(['score (last shard) → dataset', by('dataset').spawnedAt - lastScore]);
  edges.push(['dataset → train', by('train').spawnedAt - by('dataset').exitedAt!]);
  edges.push(['train → evaluate', by('evaluate').spawnedAt - by('train').exitedAt!]);
  return edges;
}

const report = await worker.runUntil(async () => {
  const wf1 = await viaWorkflow('workflow-1');
  const plain = await viaScript(wf1.root, 'plain');
  const wf2 = await viaWorkflow('workflow-2');
  return { wf1, plain, wf2 };
});
await close();

const { wf1, plain, wf2 } = report;
const edges = [...transitions(wf1.jobs), ...transitions(wf2.jobs)];
const ms = edges.map(([, v]) => v);
const lines = [
  `spec: ${specFile} (${wf1.jobs.length} jobs per round)`,
  `workflow run 1: ${wf1.wall.toFixed(1)} s   plain script: ${plain.wall.toFixed(1)} s   workflow run 2: ${wf2.wall.toFixed(1)} s`,
  `ratio workflow/plain: run 1 ${(wf1.wall / plain.wall).toFixed(3)}, run 2 ${(wf2.wall / plain.wall).toFixed(3)}, mean ${((wf1.wall + wf2.wall) / 2 / plain.wall).toFixed(3)}`,
  `stage transition latency (job exit → next job spawn): mean ${(ms.reduce((a, b) => a + b, 0) / ms.length).toFixed(0)} ms, max ${Math.max(...ms)} ms over ${ms.length} transitions`,
  ...transitions(wf1.jobs).map(([name, v]) => `  ${name.padEnd(30)} ${v} ms`),
];
console.log(lines.join('\n'));
fs.writeFileSync(path.join(out, 'report.txt'), lines.join('\n') + '\n');
