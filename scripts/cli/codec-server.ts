/**
 * A Temporal codec server (`tao codec-server`): lets the Temporal Web UI (and `temporal` CLI users) see the
 * plain contents of payloads encrypted by workers/codec.ts. Protocol (Temporal's remote codec):
 *   POST <prefix>/encode | <prefix>/decode, body {"payloads": [{"metadata": {"k": base64}, "data": base64}]}
 *   → 200 with the same shape; 400 with a one-line reason for a malformed body or a payload that fails.
 * CORS: the Web UI calls it from the browser, so requests from the allowed origins get
 * Access-Control-Allow-Origin (their own origin), credentials and the headers the UI sends; preflight
 * OPTIONS requests are answered with 204.
 *
 * Anyone who can reach this server can decrypt payloads: it listens on 127.0.0.1 unless told otherwise; put
 * it behind your authentication (the Web UI can forward its access token in Authorization) elsewhere.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

export const DEFAULT_UI_ORIGINS = ['http://127.0.0.1:8233', 'http://localhost:8233'];
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const ALLOW_HEADERS = 'Content-Type, X-Namespace, Authorization';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** 0 = a free port. */
  port?: number;
  host?: string;
  /** Web UI origins allowed to call from a browser (exact match, e.g. http://127.0.0.1:8233). */
  origins?: string[];
}

export interface CodecServer {
  server: http.Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function bytes(where: string, value: unknown): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value)) throw new BadRequest(`${where}: expected a base64 string`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

/** proto3 JSON (bytes as base64) → Payload. */
export function payloadFromJson(value: unknown, where = 'payload'): Payload {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new BadRequest(`${where}: expected an object`);
  const { metadata, data } = value as JsonPayload;
  if (metadata != null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    throw new BadRequest(`${where}.metadata: expected an object of base64 strings`);
  }
  return {
    metadata: Object.fromEntries(
      Object.entries(metadata ?? {}).map(([k, v]) => [k, bytes(`${where}.metadata.${k}`, v)] as const),
    ),
    data: data == null ? new Uint8Array() : bytes(`${where}.data`, data),
  };
}

/** Payload → proto3 JSON (bytes as base64). */
export function payloadToJson(payload: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')] as const),
    ),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BadRequest(`request body larger than ${MAX_BODY_BYTES} bytes`, 413));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parsePayloads(body: string): Payload[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    throw new BadRequest(`body is not JSON (${(e as Error).message}); expected {"payloads": [...]}`);
  }
  const payloads = (json as { payloads?: unknown } | null)?.payloads;
  if (!json || typeof json !== 'object' || !Array.isArray(payloads)) {
    throw new BadRequest('body: expected {"payloads": [{"metadata": {...}, "data": "<base64>"}]}');
  }
  return payloads.map((p, i) => payloadFromJson(p, `payloads[${i}]`));
}

/** The request handler, usable on its own (e.g. mounted in another server). */
export function codecRequestHandler(
  codec: PayloadCodec,
  origins: string[] = DEFAULT_UI_ORIGINS,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const allowed = new Set(origins.map((o) => o.replace(/\/+$/, '')));
  return (req, res) => {
    const origin = req.headers.origin;
    res.setHeader('Vary', 'Origin');
    if (origin && allowed.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Max-Age', '600');
    }
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'Content-Type': type });
      res.end(body);
    };
    if (req.method === 'OPTIONS') {
      if (origin && !allowed.has(origin)) {
        send(403, `origin ${origin} is not allowed (tao codec-server --ui-origin)\n`);
      } else {
        res.writeHead(204);
        res.end();
      }
      return;
    }
    const pathname = new URL(req.url ?? '/', 'http://codec').pathname.replace(/\/+$/, '');
    const op = pathname.endsWith('/encode') ? 'encode' : pathname.endsWith('/decode') ? 'decode' : undefined;
    if (!op) {
      send(404, 'not found: POST /encode or /decode\n');
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      send(405, `${req.method} not allowed: POST /${op}\n`);
      return;
    }
    readBody(req)
      .then(async (body) => {
        const payloads = parsePayloads(body);
        let out: Payload[];
        try {
          out = op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
        } catch (e) {
          throw new BadRequest(`${op}: ${(e as Error).message}`);
        }
        send(200, JSON.stringify({ payloads: out.map(payloadToJson) }), 'application/json');
      })
      .catch((e: unknown) => {
        if (res.headersSent) return;
        if (e instanceof BadRequest) send(e.status, `${e.message}\n`);
        else send(500, `${(e as Error)?.message ?? String(e)}\n`);
      });
  };
}

/** Starts the codec server; resolves once it listens. */
export function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  const host = options.host ?? '127.0.0.1';
  const server = http.createServer(codecRequestHandler(options.codec, options.origins));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8888, host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
      resolve({
        server,
        port,
        url: `http://${shown}:${port}`,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
