/**
 * Connection settings come from Temporal's own client configuration (@temporalio/envconfig), as the `temporal`
 * CLI reads them: a profile file written by the real `temporal config set`, TEMPORAL_PROFILE to pick a
 * profile, and TEMPORAL_* variables overriding it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { venvBin } from '../../scripts/dev/tools.js';
import { taskQueue, temporalEnv } from '../../workers/config.js';

let file: string;
beforeAll(() => {
  file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tao-envconfig-')), 'temporal.toml');
  const set = (profile: string, prop: string, value: string) =>
    execFileSync(venvBin('temporal'), ['config', 'set', '--profile', profile, '--prop', prop, '--value', value], {
      env: { ...process.env, TEMPORAL_CONFIG_FILE: file },
    });
  set('default', 'address', '10.0.0.1:7233');
  set('staging', 'address', 'staging.example:7233');
  set('staging', 'namespace', 'tao-staging');
  set('staging', 'api_key', 'secret-key');
});

describe('temporalEnv: Temporal connection settings', () => {
  it('reads the default profile of the file the CLI wrote', () => {
    const env = temporalEnv({ TEMPORAL_CONFIG_FILE: file });
    expect(env).toMatchObject({ address: '10.0.0.1:7233', namespace: 'default' });
    expect(env.connection.tls).toBeUndefined();
  });

  it('TEMPORAL_PROFILE picks a profile; an API key turns TLS on, as the CLI does', () => {
    const env = temporalEnv({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' });
    expect(env).toMatchObject({ address: 'staging.example:7233', namespace: 'tao-staging' });
    expect(env.connection).toMatchObject({ apiKey: 'secret-key', tls: true });
  });

  it('TEMPORAL_* variables override the profile', () => {
    const env = temporalEnv({
      TEMPORAL_CONFIG_FILE: file,
      TEMPORAL_PROFILE: 'staging',
      TEMPORAL_ADDRESS: '127.0.0.1:1234',
      TEMPORAL_NAMESPACE: 'other',
    });
    expect(env).toMatchObject({ address: '127.0.0.1:1234', namespace: 'other' });
  });

  it('without a file or variables: the local dev server', () => {
    const env = temporalEnv({ HOME: fs.mkdtempSync(path.join(os.tmpdir(), 'tao-home-')) });
    expect(env).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default' });
  });

  it.each([
    [
      { TEMPORAL_CONFIG_FILE: '/no/such/temporal.toml' },
      /TEMPORAL_CONFIG_FILE: file \/no\/such\/temporal.toml does not exist/,
    ],
    [{ TEMPORAL_PROFILE: 'nope' }, /profile nope.*Profile 'nope' not found/],
    [{ TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/no/such/ca.pem' }, /Temporal connection settings: .*no\/such\/ca.pem/],
  ])('a bad setting %j is an error naming it', (over, message) => {
    expect(() => temporalEnv({ TEMPORAL_CONFIG_FILE: file, ...over } as NodeJS.ProcessEnv)).toThrow(message);
  });
});

describe('taskQueue', () => {
  it.each([
    [{}, 'tao'],
    [{ TAO_TASK_QUEUE: 'gpu-a' }, 'gpu-a'],
    [{ TAO_TASK_QUEUE: '' }, 'tao'],
  ])('%j → %s', (env, want) => {
    expect(taskQueue(env)).toBe(want);
  });
});
