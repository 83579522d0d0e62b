/**
 * The demo round (the README's first command): a Temporal dev server with the Web UI (left running so the
 * run stays visible), a worker in this process, and one complete round of examples/demo/round.json on the
 * embedded default: tiny model built on the spot, real generation, rule scoring, LoRA + DPO, evaluation.
 * Running it again reuses every finished stage from its manifest.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import path from 'node:path';
import type { GateDecision, RoundEvaluation, RoundResult } from '../common/types.js';
import { createTaoWorker } from '../workers/create-worker.js';
import { connectClient } from './cli/client.js';
import { baselineLines, follow, headline, startRound, uiLink, whereToLook } from './cli/round.js';
import { loadSpecFile } from './cli/spec-file.js';
import { startDevServer } from './dev/temporal-dev.js';
import { cacheDir } from './dev/tools.js';

/**
 * What the demo is about, said plainly: the independent metric (the evaluation's own scorers, against
 * references) base → tuned with the paired 95% interval of the change, the training reward beside it, and the
 * gate's rule with the numbers that decided. Fields the evaluation did not report are left out.
 */
function verdictLines(r: { evaluation: RoundEvaluation; gate: GateDecision }): string[] {
  const e = r.evaluation;
  const f = (x: number) => x.toFixed(3);
  const signed = (x: number) => (x >= 0 ? '+' : '') + f(x);
  const which =
    e.scorers === 'training'
      ? 'the training scorers (reused by choice: not independent)'
      : "the evaluation's own scorers";
  const lines = [
    `  independent metric (${which}): base ${f(e.base.mean)} → tuned ${f(e.tuned.mean)}, change ${signed(e.improvement)}` +
      (e.improvementCiLow !== undefined && e.improvementCiHigh !== undefined
        ? ` (95% CI ${signed(e.improvementCiLow)} … ${signed(e.improvementCiHigh)}, paired per prompt, n=${e.tuned.n})`
        : ''),
  ];
  if (e.reward)
    lines.push(
      `  training reward: change ${signed(e.reward.change)} (95% CI ${signed(e.reward.ciLow)} … ${signed(e.reward.ciHigh)})`,
    );
  if (e.tasks)
    for (const [task, t] of Object.entries(e.tasks))
      lines.push(`    task ${task}: ${signed(t.change)} (95% CI ${signed(t.ciLow)} … ${signed(t.ciHigh)}, n=${t.n})`);
  if (e.rewardHacking?.flagged) lines.push(`  reward hacking flagged: ${e.rewardHacking.reason}`);
  const g = r.gate;
  const rule =
    g.rule === undefined
      ? 'gate'
      : `gate rule: ${g.rule === 'ciLower' ? 'lower bound of the 95% CI' : 'mean change'} > ${g.threshold ?? 0}`;
  const stat = g.statistic === undefined || g.statistic === null ? '' : ` (statistic ${signed(g.statistic)})`;
  lines.push(
    `  ${rule}${stat} → ${g.passed ? 'passed' : 'refused'}${g.decidedBy ? `, decided by ${g.decidedBy}` : ''}`,
  );
  return lines;
}

// The demo shows progress bars; worker lifecycle logs would only interleave with them.
Runtime.install({ logger: new DefaultLogger('WARN') });

const specFile = process.argv[2] ?? 'examples/demo/round.json';
const { document, spec } = loadSpecFile(specFile);
const dir = path.join(cacheDir(), 'dev');
const server = await startDevServer({ dir, persistent: true });
process.env.TEMPORAL_ADDRESS ??= server.address;
console.error(
  server.owned
    ? `started a Temporal dev server at ${server.address} (Web UI ${server.uiUrl}); it keeps running after the demo: stop it with "npm run tao -- dev --stop"`
    : `using the Temporal server already running at ${server.address}`,
);

const started = Date.now();
const { worker } = await createTaoWorker();
const { client, close } = await connectClient();
const result = await worker.runUntil(async () => {
  const handle = await startRound(client, document, spec);
  console.error(
    `round ${handle.workflowId} started; watch it in the Temporal Web UI: ${uiLink(handle.workflowId, handle.firstExecutionRunId)}`,
  );
  await follow(handle);
  return { result: (await handle.result()) as RoundResult, runId: handle.firstExecutionRunId };
});
await close();
// the verdict in plain words, then where to look (what `tao run` prints as well, less its repeat of the numbers)
console.log(
  [
    headline(result.result),
    ...verdictLines(result.result),
    ...baselineLines(result.result),
    ...whereToLook(result.result, result.runId),
  ].join('\n'),
);
console.log(`  finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (!result.result.promoted) process.exitCode = 3;
