/**
 * Payload encryption on the real Temporal dev server: a round runs on a worker and client with the AES-GCM
 * codec; the raw history (read by a client without the codec) holds only `binary/encrypted` payloads and none
 * of the spec's text; the codec server decrypts them for the Web UI (`tao codec-server`, CORS included).
 */
import type { Payload } from '@temporalio/common';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import type { RoundResult } from '../../common/types.js';
import { startCodecServer, type CodecServer } from '../..//scripts/cli/codec-server.js';
import { dataConverterFromEnv, ENCODING, generateKey, loadCodecFromEnv, METADATA_KEY_ID } from '../../workers/codec.js';
import { fileRoot } from '../helpers/env.js';
import { scripted } from '../helpers/scripted.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue, withWorker } from '../helpers/temporal.js';

const KEY_ENV = { TAO_CODEC_KEY: generateKey(), TAO_CODEC_KEY_ID: 'test-2025' };
const UI = 'http://127.0.0.1:8233';
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString('utf8');

/** Every payload in a history, with where it was found; search attributes and headers are not codec'd. */
function payloadsIn(value: unknown, where = '', out: { where: string; payload: Payload }[] = []) {
  if (!value || typeof value !== 'object' || value instanceof Uint8Array) return out;
  const o = value as Record<string, unknown>;
  if (o.metadata && typeof o.metadata === 'object' && 'data' in o) {
    out.push({ where, payload: o as Payload });
    return out;
  }
  for (const [k, v] of Object.entries(o)) {
    if (k === 'searchAttributes' || k === 'header') continue;
    payloadsIn(v, `${where}.${k}`, out);
  }
  return out;
}

/** A payload as the Web UI sends it to a codec server (proto3 JSON: bytes in base64). */
const asJson = (p: Payload) => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
}

describe('payload encryption', () => {
  const dataConverter = dataConverterFromEnv(KEY_ENV);
  const spec = roundSpec(fileRoot('codec'), { name: 'codec' });
  const promptsUri = spec.prompts.uri;
  let startInput: Payload;
  let server: CodecServer;

  beforeAll(async () => {
    server = await startCodecServer({ codec: loadCodecFromEnv(KEY_ENV)!, port: 0, origins: [UI] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a round with the codec: history holds only encrypted payloads; the codec client reads the result', async () => {
    const s = scripted();
    const queue = uniqueQueue('codec');
    const id = `tao/codec/${queue}`;
    const withCodec = await testClient({ dataConverter });
    const plain = await testClient();
    await withWorker(
      queue,
      s.deps,
      async () => {
        const handle = await withCodec.client.workflow.start(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: id,
          args: [spec],
          staticDetails: `prompts: ${promptsUri}`,
        });
        const result = (await handle.result()) as RoundResult;
        expect(result).toMatchObject({ runName: 'codec', round: 1, promoted: true });
        expect(s.launches().length).toBeGreaterThanOrEqual(6);
      },
      { dataConverter },
    );

    // the raw history, through a client without the codec
    const raw = plain.client.workflow.getHandle(id);
    const history = await raw.fetchHistory();
    const started = history.events![0]!.workflowExecutionStartedEventAttributes!;
    startInput = started.input!.payloads![0]!;
    expect(text(startInput.metadata!.encoding)).toBe(ENCODING);
    expect(text(startInput.metadata![METADATA_KEY_ID])).toBe('test-2025');
    expect(text(startInput.data)).not.toContain(promptsUri);
    expect(text(startInput.data)).not.toContain('json/plain');
    expect(text(history.events![0]!.userMetadata?.details?.metadata?.encoding)).toBe(ENCODING);

    const all = payloadsIn(history.events);
    const kinds = new Set(all.map((p) => p.where.replace(/^\.\d+\./, '').replace(/\.\d+$/, '')));
    expect(kinds).toContain('workflowExecutionStartedEventAttributes.input.payloads');
    expect(kinds).toContain('activityTaskScheduledEventAttributes.input.payloads');
    expect(kinds).toContain('activityTaskCompletedEventAttributes.result.payloads');
    expect(kinds).toContain('workflowExecutionCompletedEventAttributes.result.payloads');
    for (const { where, payload } of all) {
      // a patched() marker carries only the patch id, written by the SDK's core without the data converter
      if (where.includes('markerRecordedEventAttributes.details.patch-data')) {
        expect(text(payload.data)).toMatch(/^\{"id":"[a-z-]+","deprecated":(true|false)\}$/);
        continue;
      }
      expect(text(payload.metadata?.encoding), where).toBe(ENCODING);
    }
    // nothing of the spec or of the results in clear text anywhere in the history (search attributes aside)
    const rawBytes = Buffer.concat(all.map((p) => Buffer.from(p.payload.data ?? [])));
    expect(rawBytes.includes(promptsUri)).toBe(false);
    expect(rawBytes.includes('stages/')).toBe(false);

    // without the codec the result cannot be read; with it, it can
    await expect(raw.result()).rejects.toThrow(/binary\/encrypted/);
    const decoded = withCodec.client.workflow.getHandle(id);
    expect(((await decoded.result()) as RoundResult).runName).toBe('codec');
    expect(await (await decoded.describe()).staticDetails()).toBe(`prompts: ${promptsUri}`);
    await Promise.all([withCodec.close(), plain.close()]);
  });

  it('the codec server decodes a payload from the history to the plain JSON spec, and encodes', async () => {
    const r = await post(`${server.url}/decode`, JSON.stringify({ payloads: [asJson(startInput)] }), {
      'X-Namespace': 'default',
      Origin: UI,
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe(UI);
    expect(r.headers.get('access-control-allow-credentials')).toBe('true');
    const { payloads } = (await r.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
    expect(payloads).toHaveLength(1);
    expect(Buffer.from(payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toEqual(spec);

    // encode → decode gives back the same payload
    const enc = await post(`${server.url}/encode`, JSON.stringify({ payloads }));
    expect(enc.status).toBe(200);
    const encoded = ((await enc.json()) as { payloads: typeof payloads }).payloads;
    expect(Buffer.from(encoded[0]!.metadata.encoding!, 'base64').toString()).toBe(ENCODING);
    const dec = await post(`${server.url}/decode`, JSON.stringify({ payloads: encoded }));
    expect(((await dec.json()) as { payloads: typeof payloads }).payloads).toEqual(payloads);
  });

  it('answers CORS preflights for the Web UI origin only, and malformed requests with 400 and a reason', async () => {
    const pre = await fetch(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: {
        Origin: UI,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,x-namespace,authorization',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(UI);
    expect(pre.headers.get('access-control-allow-credentials')).toBe('true');
    expect(pre.headers.get('access-control-allow-headers')).toBe('Content-Type, X-Namespace, Authorization');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');

    const other = await fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { Origin: 'http://evil.test' } });
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    const bad = await post(`${server.url}/decode`, '{not json');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/^body is not JSON .*expected \{"payloads": \[\.\.\.\]\}/);
    const shape = await post(`${server.url}/decode`, JSON.stringify({ items: [] }));
    expect(shape.status).toBe(400);
    expect(await shape.text()).toContain('expected {"payloads"');
    const b64 = await post(`${server.url}/decode`, JSON.stringify({ payloads: [{ data: '%%%' }] }));
    expect(b64.status).toBe(400);
    expect(await b64.text()).toContain('payloads[0].data: expected a base64 string');

    // a payload under a key the server does not have: 400 naming the key id
    const foreign = dataConverterFromEnv({ TAO_CODEC_KEY: generateKey(), TAO_CODEC_KEY_ID: 'elsewhere' });
    const [p] = await foreign.payloadCodecs![0]!.encode([{ metadata: {}, data: new Uint8Array([1]) }]);
    const unknown = await post(`${server.url}/decode`, JSON.stringify({ payloads: [asJson(p!)] }));
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('unknown encryption key id "elsewhere"');

    expect((await fetch(`${server.url}/decode`)).status).toBe(405);
    expect((await post(`${server.url}/other`, '{}')).status).toBe(404);
  });

  it('`tao codec-server` serves the codec of the environment', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', 'codec-server', '--port', '0'], {
      env: { ...process.env, ...KEY_ENV, TAO_CODEC_KEY_FILE: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      let stderr = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          const m = /tao codec-server: (http:\/\/\S+)/.exec(stderr);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`tao codec-server exited ${code}: ${stderr}`)));
      });
      expect(stderr).toContain('keys test-2025');
      const r = await post(`${url}/decode`, JSON.stringify({ payloads: [asJson(startInput)] }));
      expect(r.status).toBe(200);
      const { payloads } = (await r.json()) as { payloads: { data: string }[] };
      expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toEqual(spec);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
    }
  });

  it('`tao codec-server` without a key says what to set', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/tao.ts', 'codec-server', '--port', '0'], {
      env: { ...process.env, TAO_CODEC_KEY: '', TAO_CODEC_KEY_FILE: '', TAO_CODEC_OLD_KEYS_FILE: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('no codec key configured: set TAO_CODEC_KEY or TAO_CODEC_KEY_FILE');
  });
});
