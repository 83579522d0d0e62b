/**
 * The stage key's lease between activity attempts of one run (decision 0004): a retry does not take it from a
 * live earlier attempt (its job may still run), takes it at once from one whose worker process is gone or when
 * its executor adopts jobs by name, and an attempt never releases a lease it no longer holds. Real file store.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { acquireLease, LEASE, leaseOwner, releaseLease, type LeaseOwner } from '../../activities/artifacts/lease.js';
import { openStore } from '../../activities/artifacts/open-store.js';
import { fileRoot } from '../helpers/env.js';

const TTL = 60_000;
const HOLDER = 'tao-run-a-prepare-g0-1234';

/** An owner on this host whose process has exited (a crashed worker). */
function deadOwner(token: string): LeaseOwner {
  const child = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return { ...leaseOwner(token), pid: Number(child.stdout.trim()), pidStart: null };
}

async function setup() {
  const store = openStore({});
  const output = fileRoot('lease') + '/stages/prepare/k/';
  fs.mkdirSync(new URL(output), { recursive: true });
  return { store, output };
}

describe('stage key lease between attempts of one run', () => {
  it('a retry waits while the earlier attempt (its worker alive) holds it; takes it once released', async () => {
    const { store, output } = await setup();
    const first = leaseOwner('attempt-1');
    const retry = leaseOwner('attempt-2');
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: first })).held).toBe(true);
    expect(await acquireLease(store, output, HOLDER, TTL, { owner: retry })).toMatchObject({
      held: false,
      holder: HOLDER,
      owner: { token: 'attempt-1' },
    });
    // the same attempt asking again keeps it
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: first })).held).toBe(true);
    await releaseLease(store, output, HOLDER, first);
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: retry })).held).toBe(true);
  });

  it('a retry takes it at once from an attempt whose worker process is gone (a crash), or when its executor adopts', async () => {
    const { store, output } = await setup();
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: deadOwner('crashed') })).held).toBe(true);
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: leaseOwner('retry') })).held).toBe(true);
    const adopting = leaseOwner('kubernetes-retry');
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: adopting, takeOverOwn: true })).held).toBe(true);
  });

  it('another run waits even when the holder is gone, until the lease expires', async () => {
    const { store, output } = await setup();
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: deadOwner('other-run') })).held).toBe(true);
    const other = { owner: leaseOwner('b'), takeOverOwn: true };
    expect((await acquireLease(store, output, 'tao-run-b-prepare-g0-1234', TTL, other)).held).toBe(false);
  });

  it('an attempt whose lease was taken over does not release its successor’s', async () => {
    const { store, output } = await setup();
    const first = leaseOwner('attempt-1');
    const second = leaseOwner('attempt-2');
    await acquireLease(store, output, HOLDER, TTL, { owner: first });
    expect((await acquireLease(store, output, HOLDER, TTL, { owner: second, takeOverOwn: true })).held).toBe(true);
    await releaseLease(store, output, HOLDER, first);
    expect(fs.existsSync(new URL(output + LEASE))).toBe(true);
    await releaseLease(store, output, HOLDER, second);
    expect(fs.existsSync(new URL(output + LEASE))).toBe(false);
  });
});
