/**
 * Waiting out a store outage inside an attempt (activities/store-outage.ts) must not time the attempt out: it
 * heartbeats at least twice per heartbeat timeout, however far its backoff has grown. Before this, pauses
 * doubled to 15 s under a 5 s heartbeat timeout, the waiting attempt was timed out, stopped waiting, and the
 * S3-outage fault test spent its three attempts inside a 60 s outage on a loaded machine.
 *
 * The store here is a stand-in whose listing fails until a deadline (an outage on demand); the heartbeats and
 * the timer are Temporal's MockActivityEnvironment and the real clock.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { StoreError, type ArtifactStore } from '../../activities/artifacts/store.js';
import { waitForStore } from '../../activities/store-outage.js';

function storeDownFor(ms: number): ArtifactStore {
  const until = Date.now() + ms;
  const down = () => Promise.reject(new StoreError('Unavailable', 'connect ECONNREFUSED (stand-in outage)'));
  return {
    list: () => (Date.now() < until ? down() : Promise.resolve([])),
    get: down,
    head: down,
    put: down,
    putStream: down,
    delete: down,
    sha256: down,
  };
}

describe('waiting for the store', () => {
  it('heartbeats more often than the heartbeat timeout while the backoff grows', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 2000 });
    const beats: number[] = [];
    env.on('heartbeat', () => beats.push(Date.now()));
    const waited = await env.run(() => waitForStore(storeDownFor(4000), 's3://bucket/root', { budgetMs: 30_000 }));
    expect(waited).toBeGreaterThanOrEqual(3500);
    const gaps = beats.slice(1).map((t, i) => t - beats[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(3);
    // capped at half the timeout (1 s); uncapped, the pauses would have been 1, 2 and 4 s
    expect(Math.max(...gaps)).toBeLessThan(1800);
  });

  it('returns at once when the store answers', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 2000 });
    expect(await env.run(() => waitForStore(storeDownFor(0), 's3://bucket/root'))).toBe(0);
  });
});
