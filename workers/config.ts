/**
 * Worker and client configuration from the environment, validated once at start-up. Connection settings
 * follow Temporal's own variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*),
 * so the same environment works for the `temporal` CLI, `tao` and the worker.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow/index.js';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const JOBS_SRC = path.join(REPO_ROOT, 'jobs', 'src');

export interface TemporalEnv {
  address: string;
  namespace: string;
  /** Accepted by both `Connection.connect` (clients) and `NativeConnection.connect` (workers). */
  connection: { address: string; apiKey?: string; tls?: TLSConfig };
}

export function temporalEnv(env: NodeJS.ProcessEnv = process.env): TemporalEnv {
  const address = env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = env.TEMPORAL_NAMESPACE ?? 'default';
  const read = (name: string) => {
    const file = env[name];
    if (!file) return undefined;
    if (!existsSync(file)) throw new Error(`${name}: file ${file} does not exist`);
    return readFileSync(file);
  };
  const cert = read('TEMPORAL_TLS_CLIENT_CERT_PATH');
  const key = read('TEMPORAL_TLS_CLIENT_KEY_PATH');
  const ca = read('TEMPORAL_TLS_SERVER_CA_CERT_PATH');
  const apiKey = env.TEMPORAL_API_KEY;
  const tlsWanted = env.TEMPORAL_TLS === 'true' || !!cert || !!apiKey;
  const connection: TemporalEnv['connection'] = {
    address,
    apiKey,
    tls: tlsWanted
      ? {
          clientCertPair: cert && key ? { crt: cert, key } : undefined,
          serverRootCACertificate: ca,
          serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME,
        }
      : undefined,
  };
  return { address, namespace, connection };
}

export function defaultPython(env: NodeJS.ProcessEnv = process.env): string {
  const python =
    env.TAO_PYTHON ?? path.join(env.TAO_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'tao'), 'venv', 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(`TAO_PYTHON: ${python} does not exist; run scripts/setup-python.sh (or set TAO_PYTHON)`);
  }
  return python;
}

/**
 * Version of the stage code that the local executor runs: a hash of the jobs package sources. It is part of
 * every memo key, so editing a stage re-runs it while untouched stages are reused.
 */
export function jobsCodeVersion(src: string = JOBS_SRC): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (name === '__pycache__') continue;
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.(py|json)$/.test(name)) h.update(path.relative(src, full)).update('\0').update(readFileSync(full));
    }
  };
  walk(src);
  return `tao_jobs-src-${h.digest('hex').slice(0, 12)}`;
}
