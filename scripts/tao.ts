#!/usr/bin/env -S npx tsx
/**
 * `tao`: convenience CLI over the same Temporal calls the `temporal` CLI makes: start and follow rounds, the
 * operator's updates, flywheel schedules, the dev stack, the worker, Kubernetes rendering and reaping.
 * `tao --help` lists every command (README: "Starting rounds"). Connection settings are Temporal's own
 * (workers/config.ts), so a `temporal` CLI profile works here unchanged.
 */
import { Command, InvalidArgumentError } from 'commander';
import path from 'node:path';
import { Connection, ScheduleOverlapPolicy, WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { JobStage } from '../common/run-spec.js';
import { loadCodecFromEnv } from '../workers/codec.js';
import { kubernetesEnv, stageTemplatesFromEnv, temporalEnv } from '../workers/config.js';
import { abortUpdate, retryStageUpdate, skipStageUpdate } from '../workflows/messages.js';
import { ensureSearchAttributes } from '../workers/search-attributes.js';
import type { RoundResult } from '../common/types.js';
import { progressQuery } from '../workflows/messages.js';
import { withClient } from './cli/client.js';
import { DEFAULT_UI_ORIGINS, startCodecServer } from './cli/codec-server.js';
import { follow, renderProgress, startRound, summarise, uiLink } from './cli/round.js';
import { checkSchedule, createSchedule, describeSchedule, scheduleId } from './cli/schedule.js';
import { checkEvaluationData } from './cli/evaluation-data.js';
import { loadSpecFile, readSpecDocument, SpecFileError } from './cli/spec-file.js';
import { isStoreTarget, renderVerdicts, stagesOfResult, verifyStores } from './cli/verify.js';
import { startDevServer, stopDevServer } from './dev/temporal-dev.js';
import { cacheDir } from './dev/tools.js';

const program = new Command('tao').description('TAO rounds on Temporal').showHelpAfterError();

/** Exit code 2 = the user's input is wrong (spec, arguments); 1 = the round or the system failed. */
function fatal(e: unknown): never {
  if (e instanceof SpecFileError) {
    console.error(`invalid spec ${e.message}`);
    process.exit(2);
  }
  if (e instanceof WorkflowUpdateFailedError || (e as Error)?.name === 'WorkflowUpdateFailedError') {
    console.error(`rejected: ${(e as WorkflowUpdateFailedError).cause?.message ?? (e as Error).message}`);
    process.exit(2);
  }
  if (e instanceof WorkflowFailedError) {
    console.error(`round failed: ${e.cause?.message ?? e.message}`);
    process.exit(1);
  }
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}

/** A command's body; whatever it throws ends the process through `fatal` (the exit code says whose fault). */
function action<A extends unknown[]>(body: (...args: A) => unknown) {
  return async (...args: A): Promise<void> => {
    try {
      await body(...args);
    } catch (e) {
      fatal(e);
    }
  };
}

program
  .command('validate')
  .argument('<spec>', 'run spec file (JSON or YAML)')
  .description('validate a run spec without starting anything')
  .action((file: string) => {
    try {
      const { spec } = loadSpecFile(file);
      const data = checkEvaluationData(spec);
      if (data.problems.length) throw new SpecFileError(file, data.problems);
      for (const note of data.notes) console.error(note);
      console.log(`${file}: valid (run ${spec.name}, round ${spec.round}, ${spec.generation.shards} shard(s))`);
    } catch (e) {
      fatal(e);
    }
  });

program
  .command('run')
  .argument('<spec>', 'run spec file (JSON or YAML)')
  .option('--follow', 'show stage progress until the round ends')
  .option('--json', 'print the result object as JSON (waits for the result)')
  .option('--no-wait', 'start and print the workflow id only')
  .option('--workflow-id <id>', 'workflow id (default tao/<name>/round-<n>)')
  .description('start a round')
  .action(
    action(async (file: string, o: { follow?: boolean; json?: boolean; wait: boolean; workflowId?: string }) => {
      const { document, spec } = loadSpecFile(file);
      await withClient(async (client) => {
        const handle = await startRound(client, document, spec, o.workflowId);
        console.error(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
        console.error(`Temporal Web UI: ${uiLink(handle.workflowId, handle.firstExecutionRunId)}`);
        if (o.wait) {
          if (o.follow) await follow(handle);
          const result = (await handle.result()) as RoundResult;
          console.log(o.json ? JSON.stringify(result, null, 2) : summarise(result, handle.firstExecutionRunId));
        } else {
          console.log(handle.workflowId);
        }
      });
    }),
  );

program
  .command('verify')
  .argument('<target>', 'a finished round (workflow id), an artifacts root or a stage folder (file:// or s3:// URI)')
  .option('--s3-endpoint <url>', "the store's S3 endpoint (default: AWS_ENDPOINT_URL)")
  .option('--no-quarantine', 'only report damaged stages (default: quarantine their manifests so they run again)')
  .option('--json', 'machine-readable output')
  .description(
    're-hash every file of the published stages (sizes and sha256, models included); exit 1 if any is damaged',
  )
  .action(
    action(async (target: string, o: { s3Endpoint?: string; quarantine: boolean; json?: boolean }) => {
      const options = { quarantine: o.quarantine, s3: o.s3Endpoint ? { endpoint: o.s3Endpoint } : undefined };
      const targets = isStoreTarget(target)
        ? [target]
        : await withClient(async (client) =>
            stagesOfResult((await client.workflow.getHandle(target).result()) as RoundResult),
          );
      const verdicts = await verifyStores(targets, options);
      console.log(o.json ? JSON.stringify(verdicts, null, 2) : renderVerdicts(verdicts));
      if (verdicts.some((v) => !v.ok)) process.exitCode = 1;
    }),
  );

program
  .command('status')
  .argument('<workflow-id>')
  .option('--json', 'machine-readable output')
  .description("a round's status, progress and (when finished) result")
  .action(
    action(async (workflowId: string, o: { json?: boolean }) => {
      await withClient(async (client) => {
        const handle = client.workflow.getHandle(workflowId);
        const d = await handle.describe();
        const progress = await handle.query(progressQuery).catch(() => null);
        const result = d.status.name === 'COMPLETED' ? ((await handle.result()) as RoundResult) : null;
        if (o.json) {
          console.log(JSON.stringify({ workflowId, runId: d.runId, status: d.status.name, progress, result }, null, 2));
        } else {
          console.log(`${workflowId}: ${d.status.name}  ${uiLink(workflowId, d.runId)}`);
          if (progress) console.log(renderProgress(progress));
          if (result) console.log(summarise(result, d.runId));
        }
      });
    }),
  );

function operatorAction(name: 'retryStage' | 'skipStage') {
  return action((workflowId: string, stage: string, o: { shard?: string; reason?: string }) =>
    withClient(async (client) => {
      const update = name === 'retryStage' ? retryStageUpdate : skipStageUpdate;
      const input = {
        stage: stage as JobStage,
        shard: o.shard === undefined ? undefined : Number(o.shard),
        reason: o.reason,
      };
      const r = await client.workflow.getHandle(workflowId).executeUpdate(update, { args: [input] });
      console.log(`${name}: applied to ${r.applied.join(', ')}`);
    }),
  );
}

program
  .command('retry')
  .argument('<workflow-id>')
  .argument('<stage>', 'the failed stage (prepare, generate, score, dataset, train, evaluate)')
  .option('--shard <n>', 'only this shard')
  .option('--reason <text>')
  .description('run a failed stage again (after fixing its cause): the retryStage update')
  .action(operatorAction('retryStage'));

program
  .command('skip')
  .argument('<workflow-id>')
  .argument('<stage>', 'generate or score')
  .option('--shard <n>', 'only this shard')
  .option('--reason <text>')
  .description('leave a failed generate/score shard out of the round: the skipStage update')
  .action(operatorAction('skipStage'));

program
  .command('abort')
  .argument('<workflow-id>')
  .option('--reason <text>')
  .description('end a round now (running jobs are cancelled, finished artifacts stay): the abort update')
  .action(
    action(async (workflowId: string, o: { reason?: string }) => {
      await withClient(async (client) => {
        await client.workflow.getHandle(workflowId).executeUpdate(abortUpdate, { args: [{ reason: o.reason }] });
        console.log(`aborted ${workflowId}`);
      });
    }),
  );

program
  .command('setup')
  .description("register the rounds' search attributes in the namespace (the worker also does this at start-up)")
  .action(
    action(async () => {
      const env = temporalEnv();
      const connection = await Connection.connect(env.connection);
      const added = await ensureSearchAttributes(connection, env.namespace);
      console.log(
        added.length
          ? `registered ${added.join(', ')} in ${env.namespace}`
          : `search attributes already registered in ${env.namespace}`,
      );
      await connection.close();
    }),
  );

const schedule = program.command('schedule').description('nightly flywheel rounds (Temporal Schedules)');

schedule
  .command('create')
  .argument('<flywheel-spec>', 'flywheel spec file (JSON or YAML)')
  .option('--cron <expr>', 'when to run, cron syntax', '0 2 * * *')
  .option('--timezone <tz>', 'IANA time zone of the cron expression', 'UTC')
  .option('--overlap <policy>', 'if the previous run is still going: skip | buffer-one', 'skip')
  .option('--catchup-window <duration>', 'missed runs (server down) younger than this still run', '1h')
  .option('--no-pause-on-failure', 'keep the schedule running after a failed flywheel run')
  .description('create the nightly schedule of a flywheel')
  .action(
    action(
      async (
        file: string,
        o: {
          cron: string;
          timezone: string;
          overlap: 'skip' | 'buffer-one';
          catchupWindow: string;
          pauseOnFailure: boolean;
        },
      ) => {
        const document = readSpecDocument(file);
        const spec = checkSchedule(file, document, o);
        await withClient(async (client) => {
          const handle = await createSchedule(client, document, spec.name, o);
          console.log(describeSchedule(await handle.describe()));
        });
      },
    ),
  );

for (const [verb, what] of [
  ['describe', 'show a schedule, its next and recent runs'],
  ['pause', 'pause a schedule'],
  ['unpause', 'resume a paused schedule'],
  ['trigger', 'run the flywheel now'],
  ['delete', 'delete a schedule (running rounds go on)'],
] as const) {
  schedule
    .command(verb)
    .argument('<name>', 'flywheel name')
    .option('--note <text>', 'why (pause/unpause)')
    .description(what)
    .action(
      action(async (name: string, o: { note?: string }) => {
        await withClient(async (client) => {
          const handle = client.schedule.getHandle(scheduleId(name));
          if (verb === 'pause') await handle.pause(o.note);
          if (verb === 'unpause') await handle.unpause(o.note);
          if (verb === 'trigger') await handle.trigger();
          if (verb === 'delete') await handle.delete();
          console.log(verb === 'delete' ? `deleted ${scheduleId(name)}` : describeSchedule(await handle.describe()));
        });
      }),
    );
}

schedule
  .command('backfill')
  .argument('<name>', 'flywheel name')
  .requiredOption('--start <iso-time>', 'take the runs scheduled from this time')
  .requiredOption('--end <iso-time>', 'up to this time')
  .description('run the scheduled runs of a past period now (e.g. after an outage longer than the catch-up window)')
  .action(
    action(async (name: string, o: { start: string; end: string }) => {
      const start = new Date(o.start);
      const end = new Date(o.end);
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end <= start) {
        throw new SpecFileError('backfill', ['--start/--end: two ISO times with start before end']);
      }
      await withClient(async (client) => {
        const handle = client.schedule.getHandle(scheduleId(name));
        await handle.backfill({ start, end, overlap: ScheduleOverlapPolicy.BUFFER_ALL });
        console.log(describeSchedule(await handle.describe()));
      });
    }),
  );

program
  .command('codec-server')
  .option('--port <port>', 'port to listen on', '8888')
  .option('--host <host>', 'address to listen on (anyone who can reach it can decrypt payloads)', '127.0.0.1')
  .option('--ui-origin <origins>', 'Web UI origin(s) allowed by CORS, comma-separated', DEFAULT_UI_ORIGINS.join(','))
  .description(
    'serve the payload codec (TAO_CODEC_KEY / TAO_CODEC_KEY_FILE) to the Temporal Web UI: POST /encode, /decode',
  )
  .action(
    action(async (o: { port: string; host: string; uiOrigin: string }) => {
      const codec = loadCodecFromEnv();
      if (!codec) throw new Error('no codec key configured: set TAO_CODEC_KEY or TAO_CODEC_KEY_FILE');
      const origins = o.uiOrigin
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const server = await startCodecServer({ codec, port: Number(o.port), host: o.host, origins });
      console.error(
        `tao codec-server: ${server.url} (keys ${codec.keyIds.join(', ')}; CORS for ${origins.join(', ')})`,
      );
      console.error(`Web UI: temporal server start-dev --ui-codec-endpoint ${server.url}, or Data Encoder settings`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      await server.close();
    }),
  );

program
  .command('render')
  .argument('<spec>', 'run spec file (JSON or YAML)')
  .option('--workflow-id <id>', 'workflow id (default tao/<name>/round-<n>)')
  .description('print the Kubernetes Jobs a round would create (templates from the TAO_STAGE_* environment)')
  .action(
    action(async (file: string, o: { workflowId?: string }) => {
      const { spec } = loadSpecFile(file);
      const { renderRound } = await import('./cli/render.js');
      process.stdout.write(renderRound(spec, stageTemplatesFromEnv(), o.workflowId));
    }),
  );

program
  .command('reap')
  .option('--namespace <ns>', 'Kubernetes namespace of the stage Jobs (default: TAO_EXECUTOR_NAMESPACE, else tao)')
  .option('--dry-run', 'print the decisions, delete nothing')
  .option(
    '--min-age <seconds>',
    'never delete Jobs younger than this',
    (v: string) => {
      if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a whole number of seconds (0 or more)');
      return Number(v);
    },
    600,
  )
  .description(
    'delete the Kubernetes Jobs of closed rounds (workflow completed, failed, cancelled, terminated, timed out or ' +
      'unknown to Temporal); kubeconfig from KUBECONFIG, ~/.kube/config or the in-cluster service account',
  )
  .action(
    action(async (o: { namespace?: string; dryRun?: boolean; minAge: number }) => {
      const { KubeConfig } = await import('@kubernetes/client-node');
      const { reapJobs } = await import('../activities/executors/kubernetes/reaper.js');
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromDefault();
      const namespace = o.namespace ?? kubernetesEnv()?.stages.namespace ?? 'tao';
      await withClient(async (client) => {
        const report = await reapJobs({
          kubeConfig,
          namespace,
          client: client.workflow,
          dryRun: o.dryRun ?? false,
          minAgeSeconds: o.minAge,
        });
        const rows = [
          ...report.deleted.map((e) => ({ ...e, decision: report.dryRun ? 'would-delete' : 'deleted' })),
          ...report.kept.map((e) => ({ ...e, decision: 'kept' })),
          ...report.skipped.map((e) => ({ ...e, decision: 'skipped' })),
        ].sort((a, b) => a.job.localeCompare(b.job));
        for (const r of rows) console.log(`${r.job}  ${r.workflowId ?? '-'}  ${r.decision}  ${r.reason}`);
        console.log(
          `${report.dryRun ? 'dry run: ' : ''}${rows.length} Job(s) in namespace ${namespace}: ` +
            `${report.deleted.length} ${report.dryRun ? 'would be deleted' : 'deleted'}, ` +
            `${report.kept.length} kept, ${report.skipped.length} skipped`,
        );
      });
    }),
  );

program
  .command('worker')
  .description('run a worker on task queue "tao" until interrupted')
  .action(async () => {
    const { runWorker } = await import('../workers/main.js');
    await runWorker().catch(fatal);
  });

program
  .command('dev')
  .option('--port <port>', 'Temporal frontend port', '7233')
  .option('--ui-port <port>', 'Web UI port', '8233')
  .option('--no-worker', 'start only the server')
  .option('--stop', 'stop a dev server left running in the background (e.g. by the demo)')
  .description('start a Temporal dev server with the Web UI (persistent, under the cache dir) and a worker')
  .action(
    action(async (o: { port: string; uiPort: string; worker: boolean; stop?: boolean }) => {
      const dir = path.join(cacheDir(), 'dev');
      if (o.stop) {
        console.error(stopDevServer(dir) ? 'stopped the dev server' : 'no dev server started by tao is running');
        return;
      }
      const server = await startDevServer({ dir, port: Number(o.port), uiPort: Number(o.uiPort), persistent: true });
      console.error(`Temporal ${server.owned ? 'dev server started' : 'server already running'} at ${server.address}`);
      if (server.uiUrl) console.error(`Temporal Web UI: ${server.uiUrl}`);
      process.env.TEMPORAL_ADDRESS ??= server.address;
      const stopServer = async () => {
        if (server.owned) await server.stop?.();
      };
      process.once('exit', () => {
        if (server.owned && server.child?.pid) {
          try {
            process.kill(-server.child.pid, 'SIGTERM');
          } catch {
            /* gone */
          }
        }
      });
      if (o.worker) {
        const { runWorker } = await import('../workers/main.js');
        await runWorker();
        await stopServer();
      } else {
        await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
        await stopServer();
      }
    }),
  );

await program.parseAsync();
