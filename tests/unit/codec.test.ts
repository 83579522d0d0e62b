import { ApplicationFailure, defaultPayloadConverter, type Payload } from '@temporalio/common';
import { decodeFailure, encodeFailure, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { payloadFromJson, payloadToJson } from '../..//scripts/cli/codec-server.js';
import {
  AesGcmCodec,
  dataConverterFromEnv,
  ENCODING,
  generateKey,
  loadCodecFromEnv,
  METADATA_KEY_ID,
} from '../../workers/codec.js';

const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? []).toString('utf8');
const toPayload = (v: unknown) => defaultPayloadConverter.toPayload(v);
const fromPayload = (p: Payload) => defaultPayloadConverter.fromPayload(p);
const codecWith = (id: string, keys: Record<string, Uint8Array>) => new AesGcmCodec({ encryptionKeyId: id, keys });

const spec = { name: 'secret-run', prompts: { uri: 's3://private-bucket/prompts.jsonl' }, n: [1, 2, 3] };

function tmpFile(name: string, content: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tao-codec-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

describe('AesGcmCodec', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('round-trips payloads of every kind; what it stores is binary/encrypted with the key id and no plain text', async () => {
    const codec = codecWith('k1', { k1 });
    const plain = [toPayload(spec), toPayload(null), toPayload(new Uint8Array([0, 1, 2])), toPayload('')];
    const encoded = await codec.encode(plain);
    expect(encoded).toHaveLength(4);
    for (const p of encoded) {
      expect(text(p.metadata?.encoding)).toBe(ENCODING);
      expect(text(p.metadata?.[METADATA_KEY_ID])).toBe('k1');
      expect(Object.keys(p.metadata ?? {}).sort()).toEqual(['encoding', METADATA_KEY_ID]);
    }
    expect(text(encoded[0]!.data)).not.toContain('private-bucket');
    expect(text(encoded[0]!.data)).not.toContain('json/plain');
    const decoded = await codec.decode(encoded);
    expect(fromPayload(decoded[0]!)).toEqual(spec);
    expect(fromPayload(decoded[1]!)).toBeNull();
    expect(fromPayload(decoded[2]!)).toEqual(new Uint8Array([0, 1, 2]));
    expect(fromPayload(decoded[3]!)).toBe('');
    expect(text(decoded[0]!.metadata?.encoding)).toBe('json/plain');
    expect(await codec.encode([])).toEqual([]);
  });

  it('uses a fresh IV every time: the same value never encrypts to the same bytes', async () => {
    const codec = codecWith('k1', { k1 });
    const [a, b] = await codec.encode([toPayload(spec), toPayload(spec)]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('passes payloads without the binary/encrypted encoding through unchanged', async () => {
    const codec = codecWith('k1', { k1 });
    const plain = toPayload(spec);
    const [out] = await codec.decode([plain]);
    expect(out).toBe(plain);
    const noMetadata: Payload = { data: new Uint8Array([1]) };
    expect((await codec.decode([noMetadata]))[0]).toBe(noMetadata);
  });

  it('with the wrong key for the id: fails clearly, never returns garbage', async () => {
    const [enc] = await codecWith('k1', { k1 }).encode([toPayload(spec)]);
    await expect(codecWith('k1', { k1: k2 }).decode([enc!])).rejects.toThrow(
      /key "k1"\): decryption failed: wrong key for this id or corrupted data/,
    );
  });

  it('detects tampering: flipped bits, a relabelled key id, truncated data', async () => {
    const codec = codecWith('k1', { k1, k2 });
    const [enc] = await codec.encode([toPayload(spec)]);
    const flipped = Buffer.from(enc!.data!);
    flipped[20] = flipped[20]! ^ 1;
    await expect(codec.decode([{ ...enc!, data: flipped }])).rejects.toThrow(/decryption failed/);
    // same key under another id: the id is authenticated data, so this fails too
    const same = codecWith('k1', { k1, k2: k1 });
    const relabelled = { ...enc!, metadata: { ...enc!.metadata, [METADATA_KEY_ID]: Buffer.from('k2') } };
    await expect(same.decode([relabelled])).rejects.toThrow(/key "k2"\): decryption failed/);
    await expect(codec.decode([{ ...enc!, data: new Uint8Array(5) }])).rejects.toThrow(/too short/);
  });

  it('names an unknown key id and the ids it knows', async () => {
    const [enc] = await codecWith('2024-01', { '2024-01': k1 }).encode([toPayload(spec)]);
    const err = await codecWith('2025-06', { '2025-06': k2 })
      .decode([enc!])
      .catch((e: Error) => e);
    expect((err as Error).message).toContain('unknown encryption key id "2024-01"');
    expect((err as Error).message).toContain('"2025-06"');
    expect((err as Error).message).toContain('TAO_CODEC_OLD_KEYS_FILE');
    const noId = { ...enc!, metadata: { encoding: enc!.metadata!.encoding! } };
    await expect(codecWith('k1', { k1 }).decode([noId])).rejects.toThrow(/without encryption-key-id/);
  });

  it('rotation: encrypts with the new key, still decrypts data encrypted with an old one', async () => {
    const before = codecWith('old', { old: k1 });
    const [oldPayload] = await before.encode([toPayload(spec)]);
    const after = codecWith('new', { new: k2, old: k1 });
    expect(after.keyIds).toEqual(['new', 'old']);
    const [newPayload] = await after.encode([toPayload(spec)]);
    expect(text(newPayload!.metadata?.[METADATA_KEY_ID])).toBe('new');
    const decoded = await after.decode([oldPayload!, newPayload!]);
    expect(decoded.map(fromPayload)).toEqual([spec, spec]);
    await expect(before.decode([newPayload!])).rejects.toThrow(/unknown encryption key id "new"/);
  });

  it('rejects bad construction: short keys, bad ids, an encryption id without a key', () => {
    expect(() => codecWith('k1', { k1: randomBytes(16) })).toThrow(/key k1: must be 32 bytes, got 16/);
    expect(() => codecWith('bad id', { 'bad id': k1 })).toThrow(/key id "bad id"/);
    expect(() => codecWith('k9', { k1 })).toThrow(/encryption key id "k9" is not among the keys/);
  });
});

describe('codec configuration from the environment', () => {
  const key = generateKey();
  const oldKey = generateKey();

  it('no key: no codec and the default data converter', () => {
    expect(loadCodecFromEnv({})).toBeUndefined();
    expect(dataConverterFromEnv({})).toEqual({});
  });

  it('with a key, failure messages and stack traces become an encrypted payload; without, they stay as they are', async () => {
    const secret = 'prompts.jsonl:3: what is my password hunter2';
    const error = ApplicationFailure.create({ type: 'StageFailed', message: secret });
    const dc = loadDataConverter(dataConverterFromEnv({ TAO_CODEC_KEY: key }));
    const failure = await encodeFailure(
      dc.payloadCodecs,
      dc.failureConverter.errorToFailure(error, dc.payloadConverter),
    );
    expect(failure.message).toBe('Encoded failure');
    expect(failure.stackTrace).toBe('');
    expect(text(failure.encodedAttributes!.metadata!.encoding)).toBe(ENCODING);
    expect(text(failure.encodedAttributes!.data)).not.toContain('hunter2');
    expect(failure.applicationFailureInfo!.type).toBe('StageFailed');
    // the same converter reads it back: the message and the stack trace return
    const back = dc.failureConverter.failureToError(
      await decodeFailure(dc.payloadCodecs, failure),
      dc.payloadConverter,
    );
    expect(back.message).toBe(secret);
    expect(back.stack).toContain('codec.test.ts');

    const plain = loadDataConverter(dataConverterFromEnv({}));
    expect(plain.failureConverter.errorToFailure(error, plain.payloadConverter).message).toBe(secret);
  });

  it('TAO_CODEC_KEY with the default id, or TAO_CODEC_KEY_ID', async () => {
    const codec = loadCodecFromEnv({ TAO_CODEC_KEY: key })!;
    expect(codec.keyIds).toEqual(['default']);
    expect(loadCodecFromEnv({ TAO_CODEC_KEY: key, TAO_CODEC_KEY_ID: '2025-06' })!.keyIds).toEqual(['2025-06']);
    const dc = dataConverterFromEnv({ TAO_CODEC_KEY: key });
    expect(dc.payloadCodecs).toHaveLength(1);
    const [enc] = await dc.payloadCodecs![0]!.encode([toPayload(spec)]);
    expect(fromPayload((await codec.decode([enc!]))[0]!)).toEqual(spec);
  });

  it('TAO_CODEC_KEY_FILE (a mounted Secret: trailing newline allowed) and TAO_CODEC_OLD_KEYS_FILE', async () => {
    const file = tmpFile('key', `${key}\n`);
    const oldFile = tmpFile('old.json', JSON.stringify({ '2024-01': oldKey }));
    const codec = loadCodecFromEnv({
      TAO_CODEC_KEY_FILE: file,
      TAO_CODEC_KEY_ID: '2025-06',
      TAO_CODEC_OLD_KEYS_FILE: oldFile,
    })!;
    expect(codec.keyIds).toEqual(['2025-06', '2024-01']);
    const [old] = await loadCodecFromEnv({ TAO_CODEC_KEY: oldKey, TAO_CODEC_KEY_ID: '2024-01' })!.encode([
      toPayload(spec),
    ]);
    expect(fromPayload((await codec.decode([old!]))[0]!)).toEqual(spec);
  });

  it('malformed settings throw naming the variable and the reason', () => {
    const short = Buffer.alloc(12).toString('base64');
    const cases: [NodeJS.ProcessEnv, RegExp][] = [
      [{ TAO_CODEC_KEY: short }, /^TAO_CODEC_KEY: must be 32 bytes base64, got 12 bytes$/],
      [{ TAO_CODEC_KEY: 'not base64!!' }, /^TAO_CODEC_KEY: not base64/],
      [{ TAO_CODEC_KEY: '   ' }, /^TAO_CODEC_KEY: is empty/],
      [{ TAO_CODEC_KEY: key, TAO_CODEC_KEY_FILE: '/x' }, /set one of them, not both/],
      [
        { TAO_CODEC_KEY_FILE: '/nonexistent/tao-key' },
        /^TAO_CODEC_KEY_FILE: file \/nonexistent\/tao-key does not exist/,
      ],
      [{ TAO_CODEC_KEY_FILE: tmpFile('k', short) }, /^TAO_CODEC_KEY_FILE: must be 32 bytes base64, got 12 bytes/],
      [{ TAO_CODEC_KEY: key, TAO_CODEC_KEY_ID: 'has space' }, /^TAO_CODEC_KEY_ID: key id "has space" is not valid/],
      [{ TAO_CODEC_OLD_KEYS_FILE: tmpFile('o.json', '{}') }, /^TAO_CODEC_OLD_KEYS_FILE: needs the current key too/],
      [
        { TAO_CODEC_KEY: key, TAO_CODEC_OLD_KEYS_FILE: tmpFile('o.json', '{oops') },
        /^TAO_CODEC_OLD_KEYS_FILE: not JSON/,
      ],
      [{ TAO_CODEC_KEY: key, TAO_CODEC_OLD_KEYS_FILE: tmpFile('o.json', '[]') }, /expected a JSON object/],
      [
        { TAO_CODEC_KEY: key, TAO_CODEC_OLD_KEYS_FILE: tmpFile('o.json', JSON.stringify({ old: short })) },
        /^TAO_CODEC_OLD_KEYS_FILE: key "old": must be 32 bytes base64, got 12 bytes/,
      ],
      [
        { TAO_CODEC_KEY: key, TAO_CODEC_OLD_KEYS_FILE: tmpFile('o.json', JSON.stringify({ old: 5 })) },
        /key "old": expected a base64 string/,
      ],
      [
        { TAO_CODEC_KEY: key, TAO_CODEC_OLD_KEYS_FILE: tmpFile('o.json', JSON.stringify({ default: oldKey })) },
        /key "default": has the id of the current key/,
      ],
    ];
    for (const [env, message] of cases) {
      expect(() => loadCodecFromEnv(env), JSON.stringify(env)).toThrow(message);
    }
    // the current key repeated in the old keys file is harmless
    const same = tmpFile('o.json', JSON.stringify({ default: key }));
    expect(loadCodecFromEnv({ TAO_CODEC_KEY: key, TAO_CODEC_OLD_KEYS_FILE: same })!.keyIds).toEqual(['default']);
  });
});

describe('codec server JSON mapping', () => {
  it('maps payloads to proto3 JSON (base64 bytes) and back', () => {
    const p = toPayload(spec);
    const json = payloadToJson(p);
    expect(Buffer.from(json.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    const back = payloadFromJson(JSON.parse(JSON.stringify(json)));
    expect(fromPayload(back)).toEqual(spec);
    expect(() => payloadFromJson({ data: 'not base64 !' })).toThrow(/payload.data: expected a base64 string/);
    expect(() => payloadFromJson({ metadata: [] })).toThrow(/payload.metadata: expected an object/);
    expect(() => payloadFromJson('x', 'payloads[3]')).toThrow(/payloads\[3\]: expected an object/);
  });
});
