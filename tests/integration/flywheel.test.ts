/**
 * The data flywheel on the real dev server: a Temporal Schedule triggers taoFlywheel three times while new
 * prompt files arrive in the source prefix; each round sees only new prompts (de-duplicated against earlier
 * rounds, PII redacted), starts from the last promoted model, and the watermark and registry pointer move
 * forward; a round whose gate fails leaves the previous model promoted. Scripted stand-in jobs.
 */
import type { Client } from '@temporalio/client';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import type { FlywheelSpecInput } from '../../common/flywheel-spec.js';
import type { FlywheelResult } from '../../common/types.js';
import { createSchedule, scheduleId } from '../..//scripts/cli/schedule.js';
import { venvBin } from '../..//scripts/dev/tools.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const run = promisify(execFile);

function logLine(text: string, i: number) {
  return JSON.stringify({
    model: 'prod-llm',
    messages: [
      { role: 'user', content: text },
      { role: 'assistant', content: `answer ${i}` },
    ],
  });
}

function writeDay(root: string, day: string, texts: string[]) {
  fs.mkdirSync(new URL(`${root}/logs/`), { recursive: true });
  fs.writeFileSync(new URL(`${root}/logs/${day}.jsonl`), texts.map(logLine).join('\n') + '\n');
}

function flywheelSpec(root: string, name: string): FlywheelSpecInput {
  return {
    apiVersion: 'tao/v1',
    name,
    source: { uri: `${root}/logs/` },
    redactPii: true,
    minNewPrompts: 3,
    template: {
      apiVersion: 'tao/v1',
      baseModel: 'tiny://fw',
      evaluation: { heldOutFraction: 0.25, reuseTrainingScorers: true },
      generation: { shards: 2, samplesPerPrompt: 2 },
      scoring: { scorers: [{ name: 'lower', type: 'regex', params: { pattern: '[a-z]', mode: 'fraction' } }] },
      training: {},
      executor: { type: 'local', heartbeatTimeoutSeconds: 10 },
      artifacts: { uri: root },
    },
  };
}

/** Triggers the schedule and returns the result of the flywheel run it started. */
async function trigger(client: Client, id: string): Promise<FlywheelResult> {
  const handle = client.schedule.getHandle(id);
  const before = (await handle.describe()).info.recentActions.length;
  await handle.trigger();
  for (let i = 0; i < 300; i++) {
    const actions = (await handle.describe()).info.recentActions;
    if (actions.length > before) {
      const a = actions[actions.length - 1]!.action;
      return (await client.workflow
        .getHandle(a.workflow.workflowId, a.workflow.firstExecutionRunId)
        .result()) as FlywheelResult;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the schedule did not start a run');
}

const readJsonl = (uri: string) =>
  fs
    .readFileSync(new URL(uri), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; messages: { content: string }[] });

describe('taoFlywheel on a schedule', () => {
  it('three triggered rounds: only new prompts, each from the last promoted model; a failed gate keeps the previous model', async () => {
    const s = scripted();
    const root = fileRoot('flywheel');
    const queue = uniqueQueue('fw');
    const name = `fw-${queue.slice(-8)}`;
    process.env.TAO_TASK_QUEUE = queue;
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      writeDay(root, '2026-11-21', [
        'how do I reset my password',
        'what are your opening hours',
        'cancel my order 1234',
        'where is my parcel',
      ]);
      await createSchedule(client, flywheelSpec(root, name), name, {
        cron: '0 2 * * *',
        timezone: 'Europe/Berlin',
        overlap: 'skip',
        catchupWindow: '1h',
        pauseOnFailure: true,
      });
      const id = scheduleId(name);
      try {
        const r1 = await trigger(client, id);
        expect(r1).toMatchObject({
          status: 'rounds-finished',
          rounds: [{ round: 1, prompts: 4, promoted: true, baseModel: 'tiny://fw' }],
        });
        expect(r1.state.watermark).toBe('2026-11-21.jsonl');
        const model1 = r1.rounds[0]!.model;

        // day 2: two repeats of day 1 and three new prompts; the round's gate will fail
        writeDay(root, '2026-11-22', [
          'how do I reset my password',
          'where is my parcel',
          'do you ship to Norway',
          'is there a student discount',
          'my card was charged twice',
        ]);
        s.setScript({ evaluate: { improvement: -0.2 } });
        const r2 = await trigger(client, id);
        expect(r2.rounds[0]).toMatchObject({ round: 2, prompts: 3, promoted: false, baseModel: model1, model: model1 });
        const day2 = readJsonl(`${root}/flywheel/${name}/round-2/prompts.jsonl`).map((p) => p.messages[0]!.content);
        expect(day2).toEqual(['do you ship to Norway', 'is there a student discount', 'my card was charged twice']);

        // day 3: new prompts, one with PII; starts from round 1's model (round 2 was not promoted)
        writeDay(root, '2026-11-23', [
          'email me at ana@example.org about the refund',
          'can I change the delivery address',
          'what is the return policy',
        ]);
        s.setScript({});
        const r3 = await trigger(client, id);
        expect(r3.rounds[0]).toMatchObject({ round: 3, prompts: 3, promoted: true, baseModel: model1 });
        expect(r3.rounds[0]!.model).not.toBe(model1);
        expect(r3.state).toMatchObject({ round: 3, watermark: '2026-11-23.jsonl' });
        const day3 = readJsonl(`${root}/flywheel/${name}/round-3/prompts.jsonl`).map((p) => p.messages[0]!.content);
        expect(day3[0]).toBe('email me at [EMAIL] about the refund');
        const pointer = JSON.parse(fs.readFileSync(new URL(`${root}/registry/${name}/current.json`), 'utf8'));
        expect(pointer).toMatchObject({ round: 3, modelUri: r3.rounds[0]!.model });

        // nothing new: the run ends early, nothing is trained, the state does not move
        const r4 = await trigger(client, id);
        expect(r4.status).toBe('nothing-new');
        expect(r4.message).toContain('nothing new: 0 new prompt(s)');
        expect(r4.state.round).toBe(3);
        expect(s.launches().filter((l) => l.stage === 'train')).toHaveLength(3);
      } finally {
        await client.schedule.getHandle(id).delete();
        delete process.env.TAO_TASK_QUEUE;
      }
    });
    await close();
  });

  it('the equivalent `temporal schedule create` command makes the same schedule as `tao schedule create`', async () => {
    const root = fileRoot('fw-cli');
    const specFile = new URL(`${root}/flywheel.json`).pathname;
    fs.writeFileSync(specFile, JSON.stringify(flywheelSpec(root, 'fwcli')));
    const { client, close } = await testClient();
    const id = `tao-flywheel-fwcli-${Date.now()}`;
    await run(venvBin('temporal'), [
      'schedule',
      'create',
      '--schedule-id',
      id,
      '--cron',
      '0 2 * * *',
      '--time-zone',
      'Europe/Berlin',
      '--overlap-policy',
      'Skip',
      '--catchup-window',
      '1h',
      '--pause-on-failure',
      '--workflow-id',
      'tao/fwcli/flywheel',
      '--type',
      'taoFlywheel',
      '--task-queue',
      'tao',
      '--input-file',
      specFile,
      '--address',
      inject('temporalAddress'),
    ]);
    try {
      const d = await client.schedule.getHandle(id).describe();
      expect(d.spec.timezone).toBe('Europe/Berlin');
      expect(d.spec.calendars?.[0]).toMatchObject({
        hour: [{ start: 2, end: 2, step: 1 }],
        minute: [{ start: 0, end: 0, step: 1 }],
      });
      expect(d.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 3_600_000, pauseOnFailure: true });
      expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'taoFlywheel', taskQueue: 'tao' });
      expect(d.action.type === 'startWorkflow' && d.action.args?.[0]).toMatchObject({
        name: 'fwcli',
        apiVersion: 'tao/v1',
      });
    } finally {
      await client.schedule.getHandle(id).delete();
      await close();
    }
  });
});

/** Appends raw text (lines, or a partial line being written) to a log file, as a logging agent does. */
function appendToDay(root: string, day: string, text: string) {
  fs.appendFileSync(new URL(`${root}/logs/${day}.jsonl`), text);
}

/** Runs taoFlywheel once (as the schedule would) and returns its result and every run's id of the chain. */
async function runFlywheel(client: Client, queue: string, spec: FlywheelSpecInput, id: string) {
  const handle = await client.workflow.start('taoFlywheel', { taskQueue: queue, workflowId: id, args: [spec] });
  const result = (await client.workflow.getHandle(id).result()) as FlywheelResult;
  return { result, firstRunId: handle.firstExecutionRunId };
}

describe('taoFlywheel: appended lines, backlogs, continue-as-new', () => {
  it('lines appended to a file the flywheel already read are read next time, a line being written is left for later', async () => {
    const s = scripted();
    const root = fileRoot('fw-append');
    const queue = uniqueQueue('fw-append');
    const name = `fwa-${queue.slice(-8)}`;
    const spec = flywheelSpec(root, name);
    const { client, close } = await testClient();
    try {
      await withWorker(queue, s.deps, async () => {
        writeDay(root, '2026-11-21', ['reset my password', 'opening hours', 'cancel order 1234', 'where is my parcel']);
        const r1 = (await runFlywheel(client, queue, spec, `tao/${name}/fw-1`)).result;
        expect(r1.rounds).toMatchObject([{ round: 1, prompts: 4 }]);

        // the same day's file grows: three new requests and one still being written (no newline, cut short)
        appendToDay(
          root,
          '2026-11-21',
          ['ship to Norway', 'student discount', 'charged twice'].map((t, i) => logLine(t, i)).join('\n') +
            '\n' +
            logLine('half written', 9).slice(0, 25),
        );
        const r2 = (await runFlywheel(client, queue, spec, `tao/${name}/fw-2`)).result;
        expect(r2.rounds).toMatchObject([{ round: 2, prompts: 3 }]);
        const round2 = readJsonl(`${root}/flywheel/${name}/round-2/prompts.jsonl`) as unknown as {
          messages: { content: string }[];
          meta: { source: string };
        }[];
        expect(round2.map((p) => p.messages[0]!.content)).toEqual([
          'ship to Norway',
          'student discount',
          'charged twice',
        ]);
        expect(round2.map((p) => p.meta.source)).toEqual([
          '2026-11-21.jsonl:5',
          '2026-11-21.jsonl:6',
          '2026-11-21.jsonl:7',
        ]);

        // the half-written line is finished, two more follow: all three are read, nothing counted invalid
        appendToDay(root, '2026-11-21', logLine('half written', 9).slice(25) + '\n');
        appendToDay(
          root,
          '2026-11-21',
          ['gift wrapping', 'change address'].map((t, i) => logLine(t, i)).join('\n') + '\n',
        );
        const r3 = (await runFlywheel(client, queue, spec, `tao/${name}/fw-3`)).result;
        expect(r3.rounds).toMatchObject([{ round: 3, prompts: 3 }]);
        const round3 = readJsonl(`${root}/flywheel/${name}/round-3/prompts.jsonl`).map((p) => p.messages[0]!.content);
        expect(round3).toEqual(['half written', 'gift wrapping', 'change address']);

        const r4 = (await runFlywheel(client, queue, spec, `tao/${name}/fw-4`)).result;
        expect(r4.status).toBe('nothing-new');
        expect(r4.message).toContain('0 new prompt(s)');
        expect(r4.message).toContain('0 invalid line(s)');
      });
    } finally {
      await close();
    }
  });

  it('a backlog is split over maxRoundsPerRun rounds, continuing as new between them', async () => {
    const s = scripted();
    const root = fileRoot('fw-backlog');
    const queue = uniqueQueue('fw-backlog');
    const name = `fwb-${queue.slice(-8)}`;
    const spec = { ...flywheelSpec(root, name), maxRoundsPerRun: 3 };
    const { client, close } = await testClient();
    try {
      await withWorker(queue, s.deps, async () => {
        // three days of logs arrived while the flywheel was paused
        writeDay(root, '2026-11-21', ['a1 reset password', 'a2 opening hours', 'a3 cancel order']);
        writeDay(root, '2026-11-22', ['b1 ship abroad', 'b2 student discount', 'b3 charged twice']);
        writeDay(root, '2026-11-23', ['c1 gift wrap', 'c2 change address', 'c3 return policy']);
        const id = `tao/${name}/flywheel`;
        const { result, firstRunId } = await runFlywheel(client, queue, spec, id);
        expect(result.status).toBe('rounds-finished');
        expect(result.rounds.map((r) => [r.round, r.prompts])).toEqual([
          [1, 3],
          [2, 3],
          [3, 3],
        ]);
        // each round took one day, in order
        for (const [round, day] of [
          [1, 'a'],
          [2, 'b'],
          [3, 'c'],
        ] as const) {
          const texts = readJsonl(`${root}/flywheel/${name}/round-${round}/prompts.jsonl`).map(
            (p) => p.messages[0]!.content,
          );
          expect(
            texts.every((t) => t.startsWith(day)),
            `round ${round}: ${texts.join(', ')}`,
          ).toBe(true);
        }
        expect(result.state).toMatchObject({ round: 3, watermark: '2026-11-23.jsonl' });
        // three runs chained by continue-as-new: the first two ended ContinuedAsNew, each history has one round
        const first = await client.workflow.getHandle(id, firstRunId).describe();
        expect(first.status.name).toBe('CONTINUED_AS_NEW');
        const last = await client.workflow.getHandle(id).describe();
        expect(last.runId).not.toBe(firstRunId);
        const firstHistory = await client.workflow.getHandle(id, firstRunId).fetchHistory();
        const events = firstHistory.events!;
        expect(events[events.length - 1]!.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
        expect(events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)).toHaveLength(1);
        expect(s.launches().filter((l) => l.stage === 'train')).toHaveLength(3);
      });
    } finally {
      await close();
    }
  });
});
