/**
 * Nightly flywheel schedules over Temporal's Schedules API (what `tao schedule ...` wraps). One schedule per
 * flywheel name, id `tao-flywheel-<name>`; its action starts `taoFlywheel` with the flywheel spec as input.
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import { FLYWHEEL_WORKFLOW } from '../../common/constants.js';
import { taskQueue } from '../../workers/config.js';
import { FlywheelSpecSchema } from '../../common/flywheel-spec.js';
import { checkFlywheelTemplate, formatIssues } from '../../common/validate.js';
import { SpecFileError } from './spec-file.js';

export interface ScheduleOptions {
  cron: string;
  timezone: string;
  overlap: 'skip' | 'buffer-one';
  catchupWindow: string;
  pauseOnFailure: boolean;
}

export const scheduleId = (name: string) => `tao-flywheel-${name}`;

const CRON = /^(\S+\s+){4}\S+$/;

/** Refuses a bad schedule or spec with the field and reason, before anything is created. */
export function checkSchedule(file: string, document: unknown, o: ScheduleOptions) {
  const problems: string[] = [];
  const parsed = FlywheelSpecSchema.safeParse(document);
  if (!parsed.success) problems.push(...formatIssues(parsed.error.issues));
  else problems.push(...checkFlywheelTemplate(parsed.data));
  if (!CRON.test(o.cron.trim()))
    problems.push(`--cron: "${o.cron}" is not a 5-field cron expression (e.g. "0 2 * * *")`);
  try {
    new Intl.DateTimeFormat('en', { timeZone: o.timezone });
  } catch {
    problems.push(`--timezone: "${o.timezone}" is not an IANA time zone (e.g. "Europe/Berlin", "UTC")`);
  }
  if (!['skip', 'buffer-one'].includes(o.overlap))
    problems.push(`--overlap: "${o.overlap}" must be skip or buffer-one`);
  if (!/^\d+[smhd]$/.test(o.catchupWindow))
    problems.push(`--catchup-window: "${o.catchupWindow}" must look like 10m, 1h or 1d`);
  if (problems.length) throw new SpecFileError(file, problems);
  return parsed.data!;
}

export async function createSchedule(client: Client, document: unknown, name: string, o: ScheduleOptions) {
  return client.schedule.create({
    scheduleId: scheduleId(name),
    spec: { cronExpressions: [o.cron], timezone: o.timezone },
    action: {
      type: 'startWorkflow',
      workflowType: FLYWHEEL_WORKFLOW,
      workflowId: `tao/${name}/flywheel`,
      taskQueue: taskQueue(),
      args: [document],
      staticSummary: `TAO flywheel ${name}`,
    },
    policies: {
      overlap: o.overlap === 'skip' ? ScheduleOverlapPolicy.SKIP : ScheduleOverlapPolicy.BUFFER_ONE,
      catchupWindow: o.catchupWindow,
      pauseOnFailure: o.pauseOnFailure,
    },
    memo: { taoFlywheel: name, cron: o.cron }, // the server stores cron as calendars; keep the text for display
  });
}

export function describeSchedule(d: ScheduleDescription): string {
  const recent = d.info.recentActions
    .slice(-5)
    .map((a) => `    ${a.takenAt.toISOString()}  ${'workflow' in a.action ? a.action.workflow.workflowId : ''}`);
  return [
    `${d.scheduleId}: ${d.state.paused ? `PAUSED (${d.state.note ?? ''})` : 'active'}`,
    `  cron ${String(d.memo?.cron ?? JSON.stringify(d.spec.calendars))} in ${d.spec.timezone ?? 'UTC'}`,
    `  overlap ${d.policies.overlap}, catch-up window ${d.policies.catchupWindow / 1000}s, pause on failure ${d.policies.pauseOnFailure}`,
    `  next runs: ${d.info.nextActionTimes
      .slice(0, 3)
      .map((t) => t.toISOString())
      .join(', ')}`,
    `  recent runs:`,
    ...(recent.length ? recent : ['    (none yet)']),
  ].join('\n');
}
