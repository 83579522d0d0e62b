/**
 * Wiring for tests that use the scripted stand-in jobs (tests/fixtures/scripted-jobs): real executor, real
 * store, real processes and exit codes, no ML. Each launch is logged so tests can count what really ran.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { ActivityDeps } from '../../activities/index.js';
import { openStore } from '../../activities/artifacts/open-store.js';
import { LocalExecutor } from '../../activities/executors/local.js';

export const SCRIPTED_JOBS = path.resolve('tests/fixtures/scripted-jobs');

export interface Scripted {
  deps: ActivityDeps;
  executor: LocalExecutor;
  launchLog: string;
  scriptFile: string;
  setScript(script: Record<string, Record<string, unknown>>): void;
  launches(): { stage: string; shard: number | null; pid: number }[];
}

export function scripted(): Scripted {
  const dir = path.resolve('test-output', 'scripted', randomUUID().slice(0, 8));
  fs.mkdirSync(dir, { recursive: true });
  const launchLog = path.join(dir, 'launches.jsonl');
  const scriptFile = path.join(dir, 'script.json');
  fs.writeFileSync(scriptFile, '{}');
  const executor = new LocalExecutor({
    python: inject('python'),
    jobsSrc: SCRIPTED_JOBS,
    store: openStore({}),
    env: { TAO_LAUNCH_LOG: launchLog, TAO_SCRIPT: scriptFile },
    killGraceMs: 2000,
  });
  return {
    deps: {
      storeFor: (a) => openStore(a),
      executors: { local: executor },
      codeVersion: 'scripted-v1',
      baseDir: process.cwd(),
      heartbeatEveryMs: 200,
    },
    executor,
    launchLog,
    scriptFile,
    setScript: (script) => fs.writeFileSync(scriptFile, JSON.stringify(script)),
    launches: () =>
      fs.existsSync(launchLog)
        ? fs
            .readFileSync(launchLog, 'utf8')
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { stage: string; shard: number | null; pid: number })
        : [],
  };
}
