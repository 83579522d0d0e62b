/**
 * The reaper (activities/executors/kubernetes/reaper.ts, `tao reap`) against the real local control plane
 * (job controller, garbage collector, kwok fake GPU nodes) and real workflows on the real Temporal server.
 * The workflows are started on a task queue no worker polls, so they stay RUNNING until terminated.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import {
  BatchV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1Job,
  type V1Role,
  type V1CronJob,
} from '@kubernetes/client-node';
import { Client, Connection, WorkflowClient } from '@temporalio/client';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StageJob } from '../../activities/executors/executor.js';
import { buildJob } from '../../activities/executors/kubernetes/job-template.js';
import { reapJobs, ReapError, type ReapEntry, type ReapReport } from '../../activities/executors/kubernetes/reaper.js';
import { jobName } from '../../activities/job-name.js';
import { RESTRICTED_USER } from '../..//scripts/dev/k8s-dev.js';
import { adminKubeConfig, tokenKubeConfig } from '../helpers/k8s.js';
import { uniqueQueue } from '../helpers/temporal.js';

const run = promisify(execFile);
const kc = adminKubeConfig();
const batch = kc.makeApiClient(BatchV1Api);
const core = kc.makeApiClient(CoreV1Api);
const suffix = randomUUID().slice(0, 8);
const namespace = `reaper-${suffix}`;
const queue = uniqueQueue('reaper'); // no worker polls it
const ids = {
  running: `tao/reaper-${suffix}/running`,
  terminated: `tao/reaper-${suffix}/terminated`,
  /** run 1 terminated, then a new run of the same id started: the new run adopts run 1's Jobs */
  restarted: `tao/reaper-${suffix}/restarted`,
  unknown: `tao/reaper-${suffix}/never-started`,
};

let connection: Connection;
let client: Client;
const describes: string[] = [];
const runIds: Record<string, string> = {};
const jobs: Record<string, string> = {};

function stageJob(workflowId: string, shard: number): StageJob {
  return {
    name: jobName({ workflowId, round: 1, stage: 'generate', shard, generation: 0 }),
    stage: 'generate',
    shard,
    specUri: 's3://tao/stages/generate/k/stage-spec.json',
    logUri: 's3://tao/stages/generate/k/logs/attempt-1.log',
    resources: { gpu: 1 },
    labels: { key: 'k' },
  };
}

async function createJob(label: string, workflowId: string, runId: string, shard = 0, edit?: (j: V1Job) => void) {
  const body = buildJob(
    stageJob(workflowId, shard),
    { namespace, workflowId, runId, round: 1, key: 'k' },
    { image: 'tao-jobs:test' },
  );
  edit?.(body);
  await batch.createNamespacedJob({ namespace, body });
  jobs[label] = body.metadata!.name!;
}

async function jobNames(): Promise<string[]> {
  return (await batch.listNamespacedJob({ namespace })).items.map((j) => j.metadata!.name!).sort();
}

async function podsOf(job: string): Promise<string[]> {
  const pods = await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` });
  return pods.items.map((p) => p.metadata!.name!);
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const byJob = (entries: ReapEntry[]) => Object.fromEntries(entries.map((e) => [e.job, e]));
const names = (entries: ReapEntry[]) => entries.map((e) => e.job).sort();

async function tao(args: string[]) {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', ...args], {
      env: {
        ...process.env,
        KUBECONFIG: inject('k8sKubeconfig'),
        TEMPORAL_ADDRESS: inject('temporalAddress'),
        TEMPORAL_NAMESPACE: 'default',
      },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  connection = await Connection.connect({ address: inject('temporalAddress') });
  client = new Client({
    connection,
    interceptors: {
      workflow: [
        {
          describe: (input, next) => {
            describes.push(input.workflowExecution.workflowId);
            return next(input);
          },
        },
      ],
    },
  });
  const start = (workflowId: string) => client.workflow.start('taoRound', { taskQueue: queue, workflowId, args: [{}] });

  runIds.running = (await start(ids.running)).firstExecutionRunId;
  const terminated = await start(ids.terminated);
  runIds.terminated = terminated.firstExecutionRunId;
  await terminated.terminate('reaper test: round ended while its Jobs ran');
  const first = await start(ids.restarted);
  runIds.restartedFirst = first.firstExecutionRunId;
  await first.terminate('reaper test: superseded');
  runIds.restartedSecond = (await start(ids.restarted)).firstExecutionRunId;

  await createJob('running0', ids.running, runIds.running, 0);
  await createJob('running1', ids.running, runIds.running, 1);
  await createJob('terminated0', ids.terminated, runIds.terminated, 0);
  await createJob('terminated1', ids.terminated, runIds.terminated, 1);
  // created by the first (now terminated) run; the open second run has the same Job names and adopts it
  await createJob('restarted', ids.restarted, runIds.restartedFirst!);
  await createJob('unknown', ids.unknown, 'no-such-run');
  // managed by the worker but without the annotations: the reaper cannot attribute it
  await createJob('unannotated', `tao/reaper-${suffix}/unannotated`, 'x', 0, (j) => {
    delete j.metadata!.annotations;
    delete j.spec!.template.metadata!.annotations;
  });
  // not managed by the worker (no managed-by label) although annotated with a closed workflow: never listed
  await createJob('foreign', ids.terminated, runIds.terminated, 7, (j) => {
    delete j.metadata!.labels!['app.kubernetes.io/managed-by'];
    j.metadata!.name = `foreign-${suffix}`;
  });

  // the job controller creates the pods and kwok runs them to completion; they stay until their Job goes
  for (const job of Object.values(jobs)) {
    await until(`pods of ${job}`, async () => (await podsOf(job)).length > 0);
  }
});

afterAll(async () => {
  for (const id of [ids.running, ids.restarted]) {
    await client?.workflow
      .getHandle(id)
      .terminate('reaper test done')
      .catch(() => undefined);
  }
  await connection?.close();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe('reaper on a real control plane with real workflows', () => {
  it('with the default minimum age (600 s) deletes nothing: every Job is too young', async () => {
    const report = await reapJobs({ kubeConfig: kc, namespace, client: client.workflow });
    expect(report.deleted).toEqual([]);
    expect(names(report.kept)).toEqual(
      [jobs.running0, jobs.running1, jobs.terminated0, jobs.terminated1, jobs.restarted, jobs.unknown].sort(),
    );
    for (const e of report.kept) expect(e.reason).toMatch(/^created \d+s ago, younger than the minimum age 600s$/);
    expect(names(report.skipped)).toEqual([jobs.unannotated]);
    expect(describes).toEqual([]); // young Jobs need no workflow lookup
    expect(await jobNames()).toEqual(Object.values(jobs).sort());
  });

  let dry: ReapReport;
  it('a dry run reports the decisions, describes each workflow once, and deletes nothing', async () => {
    describes.length = 0;
    dry = await reapJobs({
      kubeConfig: kc,
      namespace,
      client: client.workflow,
      dryRun: true,
      minAgeSeconds: 0,
      pageSize: 2,
    });
    expect(dry.dryRun).toBe(true);
    expect(names(dry.deleted)).toEqual([jobs.terminated0, jobs.terminated1, jobs.unknown].sort());
    expect(names(dry.kept)).toEqual([jobs.running0, jobs.running1, jobs.restarted].sort());
    expect(names(dry.skipped)).toEqual([jobs.unannotated]);

    const d = byJob(dry.deleted);
    expect(d[jobs.terminated0!]).toMatchObject({
      workflowId: ids.terminated,
      runId: runIds.terminated,
      workflowStatus: 'TERMINATED',
    });
    expect(d[jobs.terminated0!]!.reason).toMatch(
      new RegExp(`^workflow TERMINATED \\(latest run ${runIds.terminated}, closed `),
    );
    expect(d[jobs.unknown!]).toMatchObject({ workflowId: ids.unknown, workflowStatus: 'NOT_FOUND' });
    expect(d[jobs.unknown!]!.reason).toContain('workflow not found in Temporal namespace default');

    const k = byJob(dry.kept);
    expect(k[jobs.running0!]).toMatchObject({
      workflowStatus: 'RUNNING',
      reason: `workflow RUNNING (run ${runIds.running})`,
    });
    // judged by the workflow id's latest run, not by the run annotated on the Job
    expect(k[jobs.restarted!]).toMatchObject({ runId: runIds.restartedFirst, workflowStatus: 'RUNNING' });
    expect(k[jobs.restarted!]!.reason).toBe(
      `workflow RUNNING (run ${runIds.restartedSecond}); created by the earlier run ${runIds.restartedFirst}, the open run may adopt it`,
    );
    expect(byJob(dry.skipped)[jobs.unannotated!]).toMatchObject({
      workflowId: null,
      reason: 'no tao.dev/workflow-id annotation: cannot tell which workflow it belongs to',
    });

    // one describe per workflow id (two Jobs each for running and terminated), none for the unannotated Job
    expect([...describes].sort()).toEqual([ids.running, ids.terminated, ids.restarted, ids.unknown].sort());
    expect(await jobNames()).toEqual(Object.values(jobs).sort());
  });

  it('`tao reap --dry-run` prints one line per Job and a summary', async () => {
    const r = await tao(['reap', '--dry-run', '--namespace', namespace, '--min-age', '0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(8);
    const line = (job: string) => lines.find((l) => l.startsWith(`${job}  `));
    for (const e of dry.deleted) expect(line(e.job)).toBe(`${e.job}  ${e.workflowId}  would-delete  ${e.reason}`);
    for (const e of dry.kept) expect(line(e.job)).toBe(`${e.job}  ${e.workflowId}  kept  ${e.reason}`);
    expect(line(jobs.unannotated!)).toBe(`${jobs.unannotated}  -  skipped  ${dry.skipped[0]!.reason}`);
    expect(lines[7]).toBe(`dry run: 7 Job(s) in namespace ${namespace}: 3 would be deleted, 3 kept, 1 skipped`);
    expect(await jobNames()).toEqual(Object.values(jobs).sort());

    const bad = await tao(['reap', '--min-age', 'soon']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('a whole number of seconds');
  });

  it('a Temporal error other than "not found" aborts the run before anything is deleted', async () => {
    const wrong = new WorkflowClient({ connection, namespace: `no-such-namespace-${suffix}` });
    const error = await reapJobs({ kubeConfig: kc, namespace, client: wrong, minAgeSeconds: 0 }).catch((e) => e);
    expect(error).toBeInstanceOf(ReapError);
    expect(error.message).toMatch(
      new RegExp(
        `^describing workflow .+ in Temporal namespace no-such-namespace-${suffix} failed, nothing was deleted: NamespaceNotFoundError`,
      ),
    );
    expect(await jobNames()).toEqual(Object.values(jobs).sort());
  });

  it("deletes exactly the closed and unknown workflows' Jobs, with their pods, using only the worker Role", async () => {
    // the worker's Role from k8s/base/rbac.yaml, bound to a user with no other rights
    const role = parseAllDocuments(fs.readFileSync('k8s/base/rbac.yaml', 'utf8'))
      .map((d) => d.toJS() as V1Role)
      .find((d) => d.kind === 'Role')!;
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace, body: { ...role, metadata: { name: 'tao-worker' } } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'tao-worker-reaper-test' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tao-worker' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: RESTRICTED_USER }],
      },
    });
    const worker = tokenKubeConfig();
    // RBAC is cached briefly by the authorizer: wait until the binding is effective
    await until('the RoleBinding to apply', async () =>
      worker
        .makeApiClient(BatchV1Api)
        .listNamespacedJob({ namespace })
        .then(() => true)
        .catch(() => false),
    );

    const report = await reapJobs({ kubeConfig: worker, namespace, client: client.workflow, minAgeSeconds: 0 });
    expect(report.dryRun).toBe(false);
    expect(report.deleted).toEqual(dry.deleted);
    expect(report.kept).toEqual(dry.kept);
    expect(report.skipped).toEqual(dry.skipped);

    const gone = [jobs.terminated0!, jobs.terminated1!, jobs.unknown!];
    const left = [jobs.running0!, jobs.running1!, jobs.restarted!, jobs.unannotated!, jobs.foreign!];
    await until('the deleted Jobs to disappear', async () => {
      const now = await jobNames();
      return gone.every((j) => !now.includes(j));
    });
    expect(await jobNames()).toEqual(left.sort());
    // Background propagation: the garbage collector deletes the pods too (the default for Jobs would orphan them)
    for (const job of gone) await until(`pods of ${job} to be deleted`, async () => (await podsOf(job)).length === 0);
    for (const job of left) expect(await podsOf(job)).not.toEqual([]);

    // a second pass finds nothing more to delete
    const again = await reapJobs({ kubeConfig: worker, namespace, client: client.workflow, minAgeSeconds: 0 });
    expect(again.deleted).toEqual([]);
    expect(names(again.kept)).toEqual([jobs.running0, jobs.running1, jobs.restarted].sort());
  });

  it('the CronJob manifest is accepted by the API server (server-side dry run)', async () => {
    const cron = parse(fs.readFileSync('k8s/base/reaper-cronjob.yaml', 'utf8')) as V1CronJob;
    expect(cron.spec!.schedule).toBe('*/15 * * * *');
    const pod = cron.spec!.jobTemplate.spec!.template.spec!;
    expect(pod.serviceAccountName).toBe('tao-worker');
    expect(pod.containers[0]!.args?.[0]).toBe('reap');
    const created = await kc
      .makeApiClient(BatchV1Api)
      .createNamespacedCronJob({ namespace, body: cron, dryRun: 'All' });
    expect(created.metadata?.name).toBe('tao-reaper');
  });
});
