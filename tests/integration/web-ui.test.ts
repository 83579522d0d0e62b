/**
 * The operator's view in a real browser: Debian's Chromium driven by playwright-core against the Web UI of
 * the test run's dev server. A failed round is visible with its reason; the operator resumes it from the UI
 * (the retryStage update, and separately Reset to before the failed stage) and the round completes without
 * re-running finished stages; the schedule page shows the nightly schedule. Screenshots of what the test
 * saw go to test-output/screenshots/.
 */
import type { WorkflowHandle } from '@temporalio/client';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundResult } from '../../common/types.js';
import { createSchedule, scheduleId } from '../..//scripts/cli/schedule.js';
import { progressQuery } from '../../workflows/messages.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';
import { launchChromium } from '../helpers/web-ui.js';

const shots = path.resolve('test-output', 'screenshots');
let browser: Browser;

beforeAll(async () => {
  fs.mkdirSync(shots, { recursive: true });
  browser = await launchChromium();
});
afterAll(() => browser?.close());

async function openWorkflow(handle: WorkflowHandle, runId?: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const run = runId ?? (await handle.describe()).runId;
  await page.goto(
    `${inject('temporalUi')}/namespaces/default/workflows/${encodeURIComponent(handle.workflowId)}/${run}/history`,
  );
  await page.locator('[data-testid="execution-status"]').first().waitFor({ timeout: 60_000 });
  return page;
}

async function untilWaiting(handle: WorkflowHandle, stage: string) {
  for (let i = 0; i < 300; i++) {
    if ((await handle.query(progressQuery)).waiting.some((w) => w.stage === stage)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${stage} never waited`);
}

/** The WorkflowTaskCompleted event that scheduled the given stage's activity (a reset point just before it). */
async function workflowTaskBefore(handle: WorkflowHandle, runId: string, stage: string): Promise<string> {
  const history = await handle.client.getHandle(handle.workflowId, runId).fetchHistory();
  for (const e of history.events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    const data = a?.input?.payloads?.[0]?.data;
    if (data && JSON.parse(Buffer.from(data).toString('utf8')).stage === stage) {
      return String(a!.workflowTaskCompletedEventId);
    }
  }
  throw new Error(`no ${stage} activity in the history`);
}

const launchCounts = (s: ReturnType<typeof scripted>) =>
  Object.fromEntries(
    ['prepare', 'generate', 'score', 'dataset', 'train', 'evaluate'].map((st) => [
      st,
      s.launches().filter((l) => l.stage === st).length,
    ]),
  );

describe('the Temporal Web UI in Chromium', () => {
  it('shows a failed round with its reason, and the retryStage update sent from the UI completes it', async () => {
    const s = scripted();
    s.setScript({ train: { exit: 65, reason: 'dpo.jsonl line 7: not JSON' } });
    const queue = uniqueQueue('ui-update');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/ui/${queue}`,
        args: [roundSpec(fileRoot('ui'))],
      });
      await untilWaiting(handle, 'train');
      const page = await openWorkflow(handle);
      await expect.poll(() => page.locator('[data-testid="execution-status"]').first().innerText()).toMatch(/running/i);
      // the failure, its reason and what to do, in the workflow's current details
      await page.locator('[data-testid="user-metadata-tab"]').first().click();
      // the UI renders the Markdown current details in a sandboxed frame
      const details = page.frameLocator('iframe').first().locator('body');
      await expect.poll(() => details.innerText(), { timeout: 30_000 }).toContain('train failed: ArtifactMissing');
      expect(await details.innerText()).toContain('dpo.jsonl line 7: not JSON');
      await page.screenshot({ path: path.join(shots, '1-failed-round-waiting.png'), fullPage: true });

      // fix the cause, then More Actions → Update → retryStage {"stage": "train"}
      s.setScript({});
      await page.getByRole('button', { name: 'More Actions' }).locator('visible=true').first().click();
      await page.locator('[data-testid="update-button"]').locator('visible=true').first().click();
      const modal = page.locator('[data-testid="update-confirmation-modal"]').locator('visible=true').first();
      await modal.locator('[data-testid="update-select-button"]').click();
      await modal.getByRole('option', { name: 'retryStage' }).click();
      await modal.getByRole('textbox', { name: 'Data' }).fill('{"stage": "train", "reason": "fixed from the Web UI"}');
      await page.screenshot({ path: path.join(shots, '2-send-retryStage-update.png'), fullPage: true });
      // leaving the editor reformats the JSON and moves the buttons: blur first, then submit
      await page.keyboard.press('Tab');
      await page.waitForTimeout(500);
      await page.screenshot({ path: path.join(shots, '2b-update-ready.png'), fullPage: true });
      await modal.getByRole('button', { name: 'Submit' }).click();
      await page
        .locator('[data-testid="update-confirmation-modal"]')
        .locator('visible=true')
        .first()
        .waitFor({ state: 'hidden', timeout: 30_000 });

      const result = (await handle.result()) as RoundResult;
      expect(result.promoted).toBe(true);
      expect(launchCounts(s)).toEqual({ prepare: 1, generate: 2, score: 2, dataset: 1, train: 2, evaluate: 1 });
      await page.reload();
      await expect
        .poll(() => page.locator('[data-testid="execution-status"]').first().innerText(), { timeout: 30_000 })
        .toMatch(/completed/i);
      await page.screenshot({ path: path.join(shots, '3-round-completed.png'), fullPage: true });
      await page.close();
    });
    await close();
  });

  it('Reset from the UI to before the failed stage re-runs only unfinished work', async () => {
    const s = scripted();
    s.setScript({ train: { exit: 65, reason: 'dpo.jsonl line 7: not JSON' } });
    const queue = uniqueQueue('ui-reset');
    const { client, close } = await testClient();
    await withWorker(queue, s.deps, async () => {
      const handle = await client.workflow.start(ROUND_WORKFLOW, {
        taskQueue: queue,
        workflowId: `tao/ui/${queue}`,
        args: [roundSpec(fileRoot('ui-reset'), { operator: { waitOnFailure: false } })],
      });
      await expect(handle.result()).rejects.toThrow();
      const failedRun = (await handle.describe()).runId;
      s.setScript({});

      const page = await openWorkflow(handle, failedRun);
      await expect.poll(() => page.locator('[data-testid="execution-status"]').first().innerText()).toMatch(/failed/i);
      await page.screenshot({ path: path.join(shots, '4-failed-round.png'), fullPage: true });
      await page.getByRole('button', { name: 'Reset', exact: true }).locator('visible=true').first().click();
      const modal = page.locator('[data-testid="reset-confirmation-modal"]').locator('visible=true').first();
      // reset to the workflow task that scheduled the train stage: everything before it stays as it was
      const resetTo = await workflowTaskBefore(handle, failedRun, 'train');
      await modal.locator('[data-testid="workflow-reset-event-id-select-button"]').click();
      await modal
        .locator('[role=option]', { hasText: new RegExp(`^\\s*${resetTo} - `) })
        .first()
        .click();
      await modal.locator('#reset-reason').fill('fixed the training data; reset to before train');
      await page.screenshot({ path: path.join(shots, '5-reset-dialog.png'), fullPage: true });
      await modal.locator('[data-testid="confirm-modal-button"]').click();
      await page.locator('[data-testid="workflow-reset-alert"]').first().waitFor({ timeout: 30_000 });

      let newRun = failedRun;
      for (let i = 0; i < 150 && newRun === failedRun; i++) {
        newRun = (await handle.describe()).runId;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(newRun).not.toBe(failedRun);
      const result = (await client.workflow.getHandle(handle.workflowId, newRun).result()) as RoundResult;
      expect(result.promoted).toBe(true);
      // the stages before the reset point stay in the new run's history; only train and evaluate ran again
      expect(result.reusedStages).toEqual([]);
      expect(launchCounts(s)).toEqual({ prepare: 1, generate: 2, score: 2, dataset: 1, train: 2, evaluate: 1 });
      const after = await openWorkflow(handle, newRun);
      await expect
        .poll(() => after.locator('[data-testid="execution-status"]').first().innerText(), { timeout: 30_000 })
        .toMatch(/completed/i);
      await after.screenshot({ path: path.join(shots, '6-reset-run-completed.png'), fullPage: true });
      await page.close();
      await after.close();
    });
    await close();
  });

  it('the schedule page shows the nightly flywheel schedule', async () => {
    const { client, close } = await testClient();
    const root = fileRoot('ui-schedule');
    const name = `nightly-${Date.now() % 100000}`;
    const doc = {
      apiVersion: 'tao/v1',
      name,
      source: { uri: `${root}/logs/` },
      template: { ...roundSpec(root), name: undefined, round: undefined, prompts: undefined },
    };
    await createSchedule(client, JSON.parse(JSON.stringify(doc)), name, {
      cron: '0 2 * * *',
      timezone: 'Europe/Berlin',
      overlap: 'skip',
      catchupWindow: '1h',
      pauseOnFailure: true,
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${inject('temporalUi')}/namespaces/default/schedules/${scheduleId(name)}`);
      const title = page.locator('[data-testid="schedule-name"]').locator('visible=true').first();
      await title.waitFor({ timeout: 60_000 });
      expect(await title.innerText()).toContain(scheduleId(name));
      await expect.poll(() => page.locator('body').innerText(), { timeout: 30_000 }).toContain('taoFlywheel');
      await page.screenshot({ path: path.join(shots, '7-nightly-schedule.png'), fullPage: true });
      await page.close();
    } finally {
      await client.schedule.getHandle(scheduleId(name)).delete();
      await close();
    }
  });
});
