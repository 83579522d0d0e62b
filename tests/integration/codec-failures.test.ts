/**
 * Failures under payload encryption, on the real dev server with the real worker wiring (createTaoWorker, the
 * codec from TAO_CODEC_KEY) and the real prepare job: a prompts file whose bad lines carry secret text fails
 * the prepare stage (exit 65, BadInput), the round waits for an operator, none comes, the round fails. The raw
 * history, read by a client without the codec, must show failure messages and stack traces only as
 * `binary/encrypted` encoded attributes; decrypted, the messages name the file and line but never the prompt
 * text; no search attribute carries it either. The codec server (Web UI) and the codec client still read them.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROUND_WORKFLOW } from '../../common/constants.js';
import { startCodecServer, type CodecServer } from '../../scripts/cli/codec-server.js';
import { dataConverterFromEnv, ENCODING, generateKey, loadCodecFromEnv } from '../../workers/codec.js';
import { createTaoWorker } from '../../workers/create-worker.js';
import { fileRoot } from '../helpers/env.js';
import { roundSpec } from '../helpers/specs.js';
import { testClient, uniqueQueue } from '../helpers/temporal.js';

const SECRET = 'SECRET-7731';
const KEY_ENV = { TAO_CODEC_KEY: generateKey(), TAO_CODEC_KEY_ID: 'failures' };
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString('utf8');

interface RawFailure {
  message?: string | null;
  stackTrace?: string | null;
  encodedAttributes?: Payload | null;
  cause?: RawFailure | null;
}

/** Every Failure object in a history (with its causes), with where it was found. */
function failuresIn(value: unknown, where = '', out: { where: string; failure: RawFailure }[] = []) {
  if (!value || typeof value !== 'object' || value instanceof Uint8Array) return out;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if ((k === 'failure' || k === 'cause') && v && typeof v === 'object') {
      out.push({ where: `${where}.${k}`, failure: v as RawFailure });
    }
    failuresIn(v, `${where}.${k}`, out);
  }
  return out;
}

/** Every string and every byte string (as UTF-8) anywhere in a value: what a reader of the raw history sees. */
function allText(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(text(value));
  else if (value && typeof value === 'object') for (const v of Object.values(value)) allText(v, out);
  return out;
}

/** Every payload in a value (anything with metadata and data). */
function payloadsIn(value: unknown, out: Payload[] = []): Payload[] {
  if (!value || typeof value !== 'object' || value instanceof Uint8Array) return out;
  const o = value as Record<string, unknown>;
  if (o.metadata && typeof o.metadata === 'object' && 'data' in o) {
    out.push(o as Payload);
    return out;
  }
  for (const v of Object.values(o)) payloadsIn(v, out);
  return out;
}

describe('failures with the payload codec', () => {
  let server: CodecServer;
  const saved = { ...process.env };

  beforeAll(async () => {
    server = await startCodecServer({ codec: loadCodecFromEnv(KEY_ENV)!, port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    for (const k of Object.keys(KEY_ENV)) if (!(k in saved)) delete process.env[k];
  });

  it('failure messages are encrypted in history and carry file and line, never prompt text; search attributes neither', async () => {
    const root = fileRoot('codec-failures');
    const prompts = `${root}/prompts.jsonl`;
    // bad lines whose content is the secret: a reference of the wrong shape, an unknown role, broken JSON
    fs.writeFileSync(
      new URL(prompts),
      [
        JSON.stringify({ id: 'p1', prompt: 'fine prompt one' }),
        JSON.stringify({ id: 'p2', prompt: `what is ${SECRET}`, reference: { gold: `${SECRET}-ref` } }),
        JSON.stringify({ id: 'p3', messages: [{ role: `${SECRET}-role`, content: `tell me ${SECRET}` }] }),
        `{"id": "p4", "prompt": "${SECRET} unterminated`,
        JSON.stringify({ id: 'p5', prompt: 'fine prompt two' }),
      ].join('\n') + '\n',
    );
    const spec = roundSpec(root, {
      name: 'codecfail',
      prompts: { uri: prompts, onInvalid: 'fail' },
      operator: { waitOnFailure: true, decisionTimeoutSeconds: 2 },
    });

    Object.assign(process.env, KEY_ENV);
    const queue = uniqueQueue('codecfail');
    const id = `tao/codecfail/${queue}`;
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const { worker } = await createTaoWorker({ connection, taskQueue: queue });
    const withCodec = await testClient({ dataConverter: dataConverterFromEnv(KEY_ENV) });
    const plain = await testClient();
    try {
      await worker.runUntil(async () => {
        const handle = await withCodec.client.workflow.start(ROUND_WORKFLOW, {
          taskQueue: queue,
          workflowId: id,
          args: [spec],
        });
        const err = await handle.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        // the client with the codec reads the messages back
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const cause = (err as WorkflowFailedError).cause!;
        expect(cause.message).toContain('prepare failed and no operator decision came within 2s');
        expect(cause.message).toContain('prompts.jsonl');
        expect(cause.message).toMatch(/line 2: reference/);
        expect(cause.message).toMatch(/line 3: messages\.0\.role/);
        expect(cause.message).toMatch(/line 4: not valid JSON/);
        expect(cause.message).not.toContain(SECRET);
      });
    } finally {
      await connection.close();
    }

    const history = await plain.client.workflow.getHandle(id).fetchHistory();
    const failures = failuresIn(history.events);
    const where = failures.map((f) => f.where.replace(/^\.\d+\./, ''));
    expect(where).toContain('activityTaskFailedEventAttributes.failure');
    expect(where).toContain('workflowExecutionFailedEventAttributes.failure');
    const codec = loadCodecFromEnv(KEY_ENV)!;
    const messages: string[] = [];
    for (const { where, failure } of failures) {
      expect(failure.message, where).toBe('Encoded failure');
      expect(failure.stackTrace ?? '', where).toBe('');
      expect(text(failure.encodedAttributes?.metadata?.encoding), where).toBe(ENCODING);
      const [decoded] = await codec.decode([failure.encodedAttributes!]);
      messages.push((JSON.parse(text(decoded!.data)) as { message: string }).message);
    }
    const activityMessage = messages.find((m) => m.startsWith('prepare job'))!;
    expect(activityMessage).toMatch(/exited 65/);
    expect(activityMessage).toContain(`${prompts}: 3 invalid prompt line(s)`);

    // nothing of the secret anywhere in the raw history: messages, search attributes, payloads
    const raw = allText(history.events);
    expect(raw.filter((s) => s.includes(SECRET))).toEqual([]);
    const searchAttributes = history.events!.flatMap((e) =>
      allText([
        e.workflowExecutionStartedEventAttributes?.searchAttributes,
        e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes,
      ]),
    );
    expect(searchAttributes.join('\n')).toContain('waiting-for-operator');
    expect(searchAttributes.filter((s) => s.includes(SECRET))).toEqual([]);
    // ... nor once every payload is decrypted (failure details carry the job's log tail)
    const decrypted = await codec.decode(payloadsIn(history.events));
    expect(decrypted.map((p) => text(p.data)).filter((s) => s.includes(SECRET))).toEqual([]);

    // the Web UI's codec server decrypts an encoded failure to its message
    const encoded = failures.find((f) => f.where.endsWith('activityTaskFailedEventAttributes.failure'))!.failure;
    const asJson = {
      metadata: Object.fromEntries(
        Object.entries(encoded.encodedAttributes!.metadata ?? {}).map(([k, v]) => [
          k,
          Buffer.from(v).toString('base64'),
        ]),
      ),
      data: Buffer.from(encoded.encodedAttributes!.data ?? []).toString('base64'),
    };
    const r = await fetch(`${server.url}/decode`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ payloads: [asJson] }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { payloads: { data: string }[] };
    const attrs = JSON.parse(Buffer.from(body.payloads[0]!.data, 'base64').toString()) as {
      message: string;
      stack_trace: string;
    };
    expect(attrs.message).toBe(activityMessage);
    expect(attrs.stack_trace).toContain('runStage');
    await Promise.all([withCodec.close(), plain.close()]);
  });
});
