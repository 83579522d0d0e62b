/**
 * Optional payload encryption: a Temporal PayloadCodec with AES-256-GCM. Every payload (workflow and activity
 * inputs and results, memos, query/update/signal arguments) is serialized whole (metadata and data) and
 * encrypted, so the Temporal server and its history only ever see `binary/encrypted` payloads carrying the id
 * of the key in `encryption-key-id`. Several keys can decrypt (rotation); one key encrypts.
 *
 * Keys come from the environment, the same on workers and clients (see docs/operations.md):
 *   TAO_CODEC_KEY            the encryption key, 32 bytes in base64
 *   TAO_CODEC_KEY_FILE       or a file holding it (e.g. a mounted Kubernetes Secret)
 *   TAO_CODEC_KEY_ID         its id [default]
 *   TAO_CODEC_OLD_KEYS_FILE  optional JSON {"<id>": "<base64 key>"}: older keys, for decryption only
 * Without TAO_CODEC_KEY / TAO_CODEC_KEY_FILE there is no codec and payloads are plain JSON, as before.
 *
 * With a codec, failure messages and stack traces are encrypted too: the data converter names the failure
 * converter in encoded-failure-converter.cjs, which moves them into a payload (`encodedAttributes`). Search
 * attributes are never encoded (the server indexes them): they must not carry prompt text (they do not:
 * run name, round, stage, status, model URI, config hash, gate summary).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
// Default import: the package is CommonJS, and its named exports are not visible to Node's ESM loader when
// @temporalio/common has already require()d it.
import proto from '@temporalio/proto';

export const ENCODING = 'binary/encrypted';
export const METADATA_ENCODING_KEY = 'encoding';
export const METADATA_KEY_ID = 'encryption-key-id';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._:-]{1,100}$/;

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

export class CodecError extends Error {
  override name = 'CodecError';
}

export interface AesGcmCodecOptions {
  /** Id of the key that encrypts; it must be in `keys`. */
  encryptionKeyId: string;
  /** Every key that may decrypt, by id (the encryption key included). */
  keys: ReadonlyMap<string, Uint8Array> | Record<string, Uint8Array>;
}

/**
 * AES-256-GCM codec. Encrypted data is `iv (12 bytes) || ciphertext || auth tag (16 bytes)`; the key id is
 * authenticated as additional data, so a payload cannot be relabelled to another key.
 */
export class AesGcmCodec implements PayloadCodec {
  readonly encryptionKeyId: string;
  private readonly keys: Map<string, Buffer>;

  constructor(options: AesGcmCodecOptions) {
    const entries = options.keys instanceof Map ? [...options.keys] : Object.entries(options.keys);
    this.keys = new Map();
    for (const [id, key] of entries) {
      if (!KEY_ID.test(id)) throw new CodecError(`key id ${JSON.stringify(id)}: use 1-100 of A-Z a-z 0-9 . _ : -`);
      if (key.length !== KEY_BYTES) throw new CodecError(`key ${id}: must be ${KEY_BYTES} bytes, got ${key.length}`);
      this.keys.set(id, Buffer.from(key));
    }
    if (!this.keys.has(options.encryptionKeyId)) {
      throw new CodecError(`encryption key id ${JSON.stringify(options.encryptionKeyId)} is not among the keys`);
    }
    this.encryptionKeyId = options.encryptionKeyId;
  }

  /** Ids of the keys that can decrypt, the encryption key first. */
  get keyIds(): string[] {
    return [this.encryptionKeyId, ...[...this.keys.keys()].filter((id) => id !== this.encryptionKeyId)];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const id = this.encryptionKeyId;
    const key = this.keys.get(id)!;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(id, 'utf8'));
      const plain = ProtoPayload.encode(payload).finish();
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: utf8(ENCODING), [METADATA_KEY_ID]: utf8(id) },
        data: new Uint8Array(data),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCODING) return payload;
      const id = text(payload.metadata?.[METADATA_KEY_ID]);
      if (!id) throw new CodecError(`encrypted payload without ${METADATA_KEY_ID} metadata`);
      const key = this.keys.get(id);
      if (!key) {
        throw new CodecError(
          `encrypted payload: unknown encryption key id "${id}" (this codec has ${this.keyIds.map((k) => `"${k}"`).join(', ')}); ` +
            'add the old key to TAO_CODEC_OLD_KEYS_FILE',
        );
      }
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) {
        throw new CodecError(`encrypted payload (key "${id}"): ${data.length} bytes is too short`);
      }
      let plain: Buffer;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(id, 'utf8'));
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new CodecError(
          `encrypted payload (key "${id}"): decryption failed: wrong key for this id or corrupted data`,
        );
      }
      const decoded = ProtoPayload.decode(plain);
      const out: Payload = { metadata: decoded.metadata, data: decoded.data };
      if (decoded.externalPayloads?.length) out.externalPayloads = decoded.externalPayloads;
      return out;
    });
  }
}

/** A fresh random key, base64 (what TAO_CODEC_KEY expects); `openssl rand -base64 32` does the same. */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Strict base64 (standard or URL-safe alphabet) of exactly 32 bytes; `name` labels the error. */
export function parseKey(name: string, value: string): Buffer {
  const s = value.trim();
  if (!s) throw new Error(`${name}: is empty; expected ${KEY_BYTES} bytes base64 (e.g. from openssl rand -base64 32)`);
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    throw new Error(`${name}: not base64; expected ${KEY_BYTES} bytes base64 (e.g. from openssl rand -base64 32)`);
  }
  const key = Buffer.from(s, 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`${name}: must be ${KEY_BYTES} bytes base64, got ${key.length} bytes`);
  return key;
}

function readSecretFile(name: string, file: string): string {
  if (!existsSync(file)) throw new Error(`${name}: file ${file} does not exist`);
  return readFileSync(file, 'utf8');
}

function checkKeyId(name: string, id: string): string {
  if (!KEY_ID.test(id)) {
    throw new Error(`${name}: key id ${JSON.stringify(id)} is not valid; use 1-100 of A-Z a-z 0-9 . _ : -`);
  }
  return id;
}

/**
 * The codec configured by the environment, or undefined when no key is configured. A malformed setting throws
 * an Error naming the variable and the reason.
 */
export function loadCodecFromEnv(env: NodeJS.ProcessEnv = process.env): AesGcmCodec | undefined {
  const inline = env.TAO_CODEC_KEY;
  const file = env.TAO_CODEC_KEY_FILE;
  const oldFile = env.TAO_CODEC_OLD_KEYS_FILE;
  if (inline && file) throw new Error('TAO_CODEC_KEY, TAO_CODEC_KEY_FILE: set one of them, not both');
  if (!inline && !file) {
    if (oldFile) {
      throw new Error('TAO_CODEC_OLD_KEYS_FILE: needs the current key too (TAO_CODEC_KEY or TAO_CODEC_KEY_FILE)');
    }
    return undefined;
  }
  const key = inline
    ? parseKey('TAO_CODEC_KEY', inline)
    : parseKey('TAO_CODEC_KEY_FILE', readSecretFile('TAO_CODEC_KEY_FILE', file!));
  const id = checkKeyId('TAO_CODEC_KEY_ID', env.TAO_CODEC_KEY_ID?.trim() || 'default');
  const keys = new Map<string, Uint8Array>([[id, key]]);
  if (oldFile) {
    const raw = readSecretFile('TAO_CODEC_OLD_KEYS_FILE', oldFile);
    let old: unknown;
    try {
      old = JSON.parse(raw);
    } catch (e) {
      throw new Error(`TAO_CODEC_OLD_KEYS_FILE: not JSON (${(e as Error).message}); expected {"<id>": "<base64 key>"}`);
    }
    if (!old || typeof old !== 'object' || Array.isArray(old)) {
      throw new Error('TAO_CODEC_OLD_KEYS_FILE: expected a JSON object {"<id>": "<base64 key>"}');
    }
    for (const [oldId, value] of Object.entries(old)) {
      const where = `TAO_CODEC_OLD_KEYS_FILE: key "${oldId}"`;
      checkKeyId(where, oldId);
      if (typeof value !== 'string') throw new Error(`${where}: expected a base64 string`);
      const oldKey = parseKey(where, value);
      if (oldId === id && !oldKey.equals(key)) {
        throw new Error(`${where}: has the id of the current key (TAO_CODEC_KEY_ID) but another value`);
      }
      keys.set(oldId, oldKey);
    }
  }
  return new AesGcmCodec({ encryptionKeyId: id, keys });
}

/** The module whose `failureConverter` encodes failure messages and stack traces (see the header). */
export const ENCODED_FAILURE_CONVERTER_PATH = fileURLToPath(
  new URL('./encoded-failure-converter.cjs', import.meta.url),
);

/**
 * Data converter for `Worker.create` and `new Client`: with a configured key, the codec and the failure
 * converter that puts failure messages into encoded payloads; else the default. A worker must bundle its
 * workflows with the same converter (`workflowsPath`, or `bundleWorkflowCode({failureConverterPath})`) so
 * failures made in the workflow are encoded too.
 */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter {
  const codec = loadCodecFromEnv(env);
  return codec ? { payloadCodecs: [codec], failureConverterPath: ENCODED_FAILURE_CONVERTER_PATH } : {};
}
