/**
 * `taoFlywheel`: continuous improvement. A Temporal Schedule starts it nightly; each run collects the prompts
 * that arrived since the last finished round, runs one `taoRound` child on them starting from the latest
 * promoted model, and only then advances the watermark and the per-file read cursors (a failed round is
 * retried on the same prompts by the next run). A backlog is shared out over up to `maxRoundsPerRun` rounds;
 * history stays bounded: one child per round, continue-as-new between rounds of a backlog.
 */
import {
  ApplicationFailure,
  continueAsNew,
  executeChild,
  ParentClosePolicy,
  patched,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { roundWorkflowId } from '../common/constants.js';
import { FailureType } from '../common/errors.js';
import { FlywheelSpecSchema, type FlywheelSpec, type FlywheelSpecInput } from '../common/flywheel-spec.js';
import type { RunSpecInput } from '../common/run-spec.js';
import type { FlywheelResult, FlywheelRoundSummary, RoundResult } from '../common/types.js';
import { checkFlywheelTemplate, formatIssues } from '../common/validate.js';
import { bookkeepingOptions } from './activity-options.js';
import { registryOf } from './gate.js';
import { taoRound } from './tao-round.js';

const { checkStore } = proxyActivities<Activities>(bookkeepingOptions);
const { loadFlywheelState, commitFlywheelState, collectPrompts, readPromoted } = proxyActivities<Activities>({
  ...bookkeepingOptions,
  startToCloseTimeout: '30m', // collecting reads a day of logs
  heartbeatTimeout: undefined,
});

export async function taoFlywheel(
  input: FlywheelSpecInput,
  done: FlywheelRoundSummary[] = [],
): Promise<FlywheelResult> {
  const parsed = FlywheelSpecSchema.safeParse(input);
  if (!parsed.success) {
    const errors = formatIssues(parsed.error.issues);
    throw ApplicationFailure.create({
      type: FailureType.InvalidFlywheelSpec,
      message: `invalid flywheel spec:\n${errors.join('\n')}`,
      nonRetryable: true,
      details: errors,
    });
  }
  const spec: FlywheelSpec = parsed.data;
  // The template checked as the rounds it will start; patched so runs recorded before this check replay as they ran.
  const templateProblems = patched('flywheel-checks-template') ? checkFlywheelTemplate(spec) : [];
  if (templateProblems.length) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidFlywheelSpec,
      message: `invalid flywheel spec:\n${templateProblems.join('\n')}`,
      nonRetryable: true,
      details: templateProblems,
    });
  }
  // The store preflight (first run of a chain only): the artifact root is writable and the log prefix answers
  // with the template's store settings, before any state is read or round started. Patched for old histories.
  if (done.length === 0 && patched('flywheel-store-preflight')) {
    await checkStore({ artifacts: spec.template.artifacts, inputs: {}, reachable: { 'source.uri': spec.source.uri } });
  }
  const state = await loadFlywheelState(spec);
  const round = state.round + 1;
  // a backlog is shared between the rounds this run may still start (a day of logs each for a 3-day backlog)
  const collected = await collectPrompts({ spec, state, round, roundsLeft: spec.maxRoundsPerRun - done.length });
  if (collected.prompts < spec.minNewPrompts) {
    return {
      name: spec.name,
      status: done.length ? 'rounds-finished' : 'nothing-new',
      rounds: done,
      state,
      message:
        `nothing new: ${collected.prompts} new prompt(s) in ${collected.files} new file(s) of ${spec.source.uri} ` +
        `(${collected.duplicates} duplicate(s) of earlier rounds, ${collected.invalid} invalid line(s)); ` +
        `at least ${spec.minNewPrompts} needed to run a round`,
    };
  }

  const registry = registryOf({ ...spec.template, name: spec.name } as Parameters<typeof registryOf>[0]);
  const promoted = await readPromoted({ registry, runName: spec.name, artifacts: spec.template.artifacts });
  const baseModel = promoted?.modelUri ?? spec.template.baseModel;
  const roundSpec: RunSpecInput = {
    ...spec.template,
    kind: 'Round',
    name: spec.name,
    round,
    baseModel,
    prompts: { uri: collected.promptsUri!, onInvalid: spec.template.prompts.onInvalid },
  };
  const workflowId = roundWorkflowId(spec.name, round);
  const result: RoundResult = await executeChild(taoRound, {
    workflowId,
    args: [roundSpec],
    // the round's jobs belong to the round: if the flywheel is terminated, the round still finishes
    parentClosePolicy: ParentClosePolicy.ABANDON,
    staticSummary: `TAO round ${round} of ${spec.name} (flywheel, ${collected.prompts} new prompts)`,
  });

  const summary: FlywheelRoundSummary = {
    round,
    workflowId,
    prompts: collected.prompts,
    promoted: result.promoted,
    improvement: result.evaluation.improvement,
    baseModel,
    model: result.promoted ? result.tunedModel : baseModel,
  };
  const next = {
    round,
    watermark: collected.watermark,
    // how far each source file was read: lines appended to a read file are the next round's
    cursors: { ...state.cursors, ...collected.cursors },
    seen: [...state.seen, collected.digestsUri!],
    lastRound: {
      workflowId,
      promoted: result.promoted,
      improvement: result.evaluation.improvement,
      model: summary.model,
    },
  };
  await commitFlywheelState({ spec, state: next });
  const rounds = [...done, summary];
  // remainingFiles is absent from collections recorded before backlogs were shared: continue as they did
  if (rounds.length < spec.maxRoundsPerRun && (collected.remainingFiles ?? 1) > 0) {
    // a backlog: the next round in a fresh run, so history stays small however long the backlog is
    return continueAsNew<typeof taoFlywheel>(input, rounds);
  }
  return {
    name: spec.name,
    status: 'rounds-finished',
    rounds,
    state: next,
    message: `round ${round}: ${result.promoted ? 'promoted' : `not promoted (${result.gate.reason})`}; ${workflowInfo().workflowId}`,
  };
}
