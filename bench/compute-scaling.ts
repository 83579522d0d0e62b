/**
 * Compute scaling (the TAO paper's Figure 3 in miniature): the demo round with 2, 4, 8 and 16 samples per
 * prompt, everything else fixed, each through the taoRound workflow. Plots held-out quality of the tuned model
 * against tuning compute (job-seconds of generate + score + dataset + train, and samples generated), and
 * writes docs/compute-scaling.md and docs/compute-scaling.svg. Inference cost of the tuned model is the base
 * model's: the merged model has the same architecture and size (checked here from the safetensors files).
 *
 *   node --import tsx bench/compute-scaling.ts [--samples 2,4,8,16] [--port 27533]
 *
 * It writes all of docs/compute-scaling.md (multi-node training lives in docs/multi-node-training.md).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ROUND_WORKFLOW } from '../common/constants.js';
import type { RunSpecInput } from '../common/run-spec.js';
import type { RoundResult } from '../common/types.js';
import { benchHarness } from './harness.js';

const { values: opt } = parseArgs({
  options: {
    samples: { type: 'string', default: '2,4,8,16' },
    // its own dev server; the default is clear of the test suite's default range (17233 .. 19333)
    port: { type: 'string', default: '27533' },
  },
});
const ladder = opt.samples.split(',').map(Number);
const port = Number(opt.port);
const demo = JSON.parse(fs.readFileSync('examples/demo/round.json', 'utf8')) as RunSpecInput;
const out = path.resolve('test-output', 'bench', `scaling-${randomUUID().slice(0, 8)}`);
fs.mkdirSync(out, { recursive: true });

const { client, deps, worker, close } = await benchHarness(out, port, 'scaling');

const weightsBytes = (uri: string) =>
  fs
    .readdirSync(new URL(uri))
    .filter((f) => f.endsWith('.safetensors'))
    .reduce((n, f) => n + fs.statSync(new URL(f, uri)).size, 0);

interface Point {
  samples: number;
  generated: number;
  jobSeconds: number;
  base: number;
  tuned: number;
  ciLow: number;
  ciHigh: number;
  sizeRatio: number;
}
const points: Point[] = [];
await worker.runUntil(async () => {
  for (const n of ladder) {
    const root = pathToFileURL(path.join(out, `n${n}`)).href;
    const from = deps.local.timeline.length;
    const spec = { ...demo, generation: { ...demo.generation, samplesPerPrompt: n }, artifacts: { uri: root } };
    const r = (await client.workflow.execute(ROUND_WORKFLOW, {
      taskQueue: 'scaling',
      workflowId: `scaling-${n}-${randomUUID().slice(0, 6)}`,
      args: [spec],
    })) as RoundResult;
    const jobs = deps.local.timeline
      .slice(from)
      .filter((j) => ['generate', 'score', 'dataset', 'train'].includes(j.stage));
    const jobSeconds = jobs.reduce((s, j) => s + (j.exitedAt! - j.spawnedAt) / 1000, 0);
    const base = r.baseModel; // prepare's output: the built (or given) base model directory
    points.push({
      samples: n,
      generated: r.stages.generate?.recordsOut ?? 0,
      jobSeconds,
      base: r.evaluation.base.mean,
      tuned: r.evaluation.tuned.mean,
      ciLow: r.evaluation.tuned.ciLow,
      ciHigh: r.evaluation.tuned.ciHigh,
      sizeRatio: weightsBytes(r.tunedModel) / weightsBytes(base),
    });
    console.log(JSON.stringify(points[points.length - 1]));
  }
});
await close();

// A small hand-written SVG: tuned score (with its 95% CI) and base score against job-seconds of tuning.
const W = 560;
const H = 340;
const m = { l: 60, r: 20, t: 30, b: 50 };
const xs = points.map((p) => p.jobSeconds);
const xMax = Math.max(...xs) * 1.1;
const x = (v: number) => m.l + (v / xMax) * (W - m.l - m.r);
const y = (v: number) => H - m.b - v * (H - m.t - m.b);
const line = (f: (p: Point) => number) =>
  points.map((p, i) => `${i ? 'L' : 'M'}${x(p.jobSeconds).toFixed(1)},${y(f(p)).toFixed(1)}`).join(' ');
const svg = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
  `<rect width="${W}" height="${H}" fill="white"/>`,
  `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">Held-out score vs tuning compute (demo task)</text>`,
  `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
  `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
  ...[0, 0.25, 0.5, 0.75, 1].map(
    (v) =>
      `<text x="${m.l - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text><line x1="${m.l}" y1="${y(v)}" x2="${W - m.r}" y2="${y(v)}" stroke="#eee"/>`,
  ),
  ...[0, 25, 50, 75, 100, 150, 200, 300]
    .filter((t) => t <= xMax)
    .map(
      (t) =>
        `<text x="${x(t).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${t}</text><line x1="${x(t).toFixed(1)}" y1="${H - m.b}" x2="${x(t).toFixed(1)}" y2="${H - m.b + 4}" stroke="black"/>`,
    ),
  `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">tuning compute: job-seconds of generate + score + dataset + train</text>`,
  `<text x="16" y="${H / 2}" transform="rotate(-90 16 ${H / 2})" text-anchor="middle">mean held-out score</text>`,
  `<path d="${line((p) => p.base)}" fill="none" stroke="#999" stroke-dasharray="4 3"/>`,
  `<path d="${line((p) => p.tuned)}" fill="none" stroke="#1f6feb" stroke-width="2"/>`,
  ...points.map(
    (p) =>
      `<line x1="${x(p.jobSeconds)}" y1="${y(p.ciLow)}" x2="${x(p.jobSeconds)}" y2="${y(p.ciHigh)}" stroke="#1f6feb"/><circle cx="${x(p.jobSeconds)}" cy="${y(p.tuned)}" r="4" fill="#1f6feb"/><text x="${x(p.jobSeconds) + 6}" y="${y(p.tuned) - 6}">N=${p.samples}</text>`,
  ),
  `<text x="${W - m.r - 150}" y="${m.t + 14}" fill="#1f6feb">tuned (95% CI)</text><text x="${W - m.r - 150}" y="${m.t + 30}" fill="#999">base</text>`,
  '</svg>',
].join('\n');
fs.writeFileSync('docs/compute-scaling.svg', svg + '\n');
const rows = points.map(
  (p) =>
    `| ${p.samples} | ${p.generated} | ${p.jobSeconds.toFixed(0)} | ${p.base.toFixed(3)} | ${p.tuned.toFixed(3)} [${p.ciLow.toFixed(3)}, ${p.ciHigh.toFixed(3)}] | ${p.sizeRatio.toFixed(3)} |`,
);
fs.writeFileSync(
  'docs/compute-scaling.md',
  [
    '# Compute scaling: quality vs tuning compute',
    '',
    'The demo round (`examples/demo/round.json`) with 2, 4, 8 and 16 samples per prompt, everything else fixed,',
    `each run through the \`taoRound\` workflow on a 2-core CPU machine (${new Date().toISOString().slice(0, 10)}), by`,
    '`node --import tsx bench/compute-scaling.ts`. Compute is the job-seconds of generate, score, dataset and',
    "train; quality is the independent metric (the evaluation's own scorers: `numeric-match` against the held-out",
    "prompts' references, which training never sees) on greedy answers, with its bootstrap 95% CI. The tuned",
    'model is the base architecture with merged LoRA weights: the last column is the size of its weights relative',
    'to the base, so serving it costs what serving the base costs. Job-seconds are wall-clock seconds of the jobs',
    'on a 2-core machine shared with other work, so they move with its load: read "samples generated" as the',
    'compute axis, and job-seconds only within a run on a quiet machine. The ladder up to 32 samples, with tokens',
    'per answer, is in [results.md](results.md) (in-process stages, no Temporal).',
    '',
    '![held-out score vs tuning compute](compute-scaling.svg)',
    '',
    '| samples / prompt | samples generated | job-seconds | base | tuned [95% CI] | tuned / base weights |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n'),
);
console.log(fs.readFileSync('docs/compute-scaling.md', 'utf8'));
