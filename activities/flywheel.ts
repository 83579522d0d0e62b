/**
 * Flywheel activities: its durable state in the artifact store, and collecting the prompts that arrived
 * since the last finished round. Prompts are read and written here, in the activity; only counts and URIs
 * go back to the workflow.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { FailureType } from '../common/errors.js';
import type { FlywheelSpec } from '../common/flywheel-spec.js';
import type { CollectResult, FlywheelState } from '../common/types.js';
import { joinUri, resolveUri, StoreError, type ArtifactStore } from './artifacts/store.js';
import { filesForRound, newLines, pendingFiles } from './flywheel-source.js';
import { redactPii } from './pii.js';

export interface FlywheelDeps {
  storeFor(artifacts: FlywheelSpec['template']['artifacts']): ArtifactStore;
  baseDir: string;
}

interface Message {
  role: string;
  content: string;
}

const MAX_PROBLEMS = 20;

function stateUri(spec: FlywheelSpec, baseDir: string): string {
  return joinUri(resolveUri(spec.template.artifacts.uri, baseDir), 'flywheel', spec.name, 'state.json');
}

/**
 * One log line → the prompt's messages. Accepts an OpenAI chat completions request body
 * (`{model?, messages, metadata?}`) or a log record wrapping it (`{request: {...}, response?}`). A trailing
 * assistant message (the logged answer) is dropped: the prompt is what came before it.
 */
function parseLine(line: string): { messages: Message[]; task: string | null } | string {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    // not the parser's message: V8 quotes the start of the line in it, and problems reach the history
    return 'not JSON';
  }
  const record = doc as { request?: unknown; messages?: unknown; metadata?: { task?: unknown } };
  const body = (record.request ?? record) as { messages?: unknown; metadata?: { task?: unknown } };
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'no "messages" array';
  const messages: Message[] = [];
  for (const [i, m] of body.messages.entries()) {
    const msg = m as { role?: unknown; content?: unknown };
    if (typeof msg.role !== 'string') return `messages.${i}.role: not a string`;
    const content = Array.isArray(msg.content)
      ? msg.content.map((p: { text?: unknown }) => (typeof p?.text === 'string' ? p.text : '')).join('')
      : msg.content;
    if (typeof content !== 'string') return `messages.${i}.content: not text`;
    messages.push({ role: msg.role, content });
  }
  while (messages.length && messages[messages.length - 1]!.role === 'assistant') messages.pop();
  if (!messages.some((m) => m.role === 'user')) return 'no user message';
  const task = body.metadata?.task;
  return { messages, task: typeof task === 'string' ? task : null };
}

const digestOf = (messages: Message[]) =>
  createHash('sha256')
    .update(JSON.stringify(messages.map((m) => [m.role, m.content.trim().replace(/\s+/g, ' ')])))
    .digest('hex');

export function createFlywheelActivities(deps: FlywheelDeps) {
  async function loadFlywheelState(spec: FlywheelSpec): Promise<FlywheelState> {
    const data = await deps.storeFor(spec.template.artifacts).get(stateUri(spec, deps.baseDir));
    return data ? (JSON.parse(data.toString('utf8')) as FlywheelState) : { round: 0, watermark: null, seen: [] };
  }

  /** Moves the flywheel forward: only called after a round finished, so a failed round is retried on the same prompts. */
  async function commitFlywheelState(input: { spec: FlywheelSpec; state: FlywheelState }): Promise<void> {
    await deps
      .storeFor(input.spec.template.artifacts)
      .put(stateUri(input.spec, deps.baseDir), JSON.stringify(input.state, null, 2));
  }

  /**
   * The next round's prompts: the unread lines of the pending source files (new files, and files that grew
   * since their cursor), a share of them when the run has several rounds left for a backlog (`roundsLeft`,
   * default 1: take everything), and more files while fewer than `minNewPrompts` prompts were found.
   */
  async function collectPrompts(input: {
    spec: FlywheelSpec;
    state: FlywheelState;
    round: number;
    roundsLeft?: number;
  }): Promise<CollectResult> {
    const { spec, state, round } = input;
    const store = deps.storeFor(spec.template.artifacts);
    const source = resolveUri(spec.source.uri, deps.baseDir).replace(/\/?$/, '/');
    let listing;
    try {
      listing = await store.list(source);
    } catch (e) {
      if (e instanceof StoreError && e.code !== 'Unavailable') {
        throw ApplicationFailure.nonRetryable(`source.uri ${source}: ${e.message}`, FailureType.InvalidFlywheelSpec);
      }
      throw e;
    }
    const pending = pendingFiles(listing, source, state);
    const share = filesForRound(pending.length, input.roundsLeft ?? 1);

    const seen = new Set<string>();
    for (const uri of state.seen) {
      const data = await store.get(uri);
      if (data) for (const d of data.toString('utf8').split('\n')) if (d) seen.add(d);
    }
    const rows: string[] = [];
    const digests: string[] = [];
    const problems: string[] = [];
    let duplicates = 0;
    let invalid = 0;
    let redactions = 0;
    const cursors: NonNullable<CollectResult['cursors']> = {};
    const files: typeof pending = [];
    for (const file of pending) {
      if (files.length >= share && rows.length >= spec.minNewPrompts) break;
      files.push(file);
      const data = (await store.get(file.uri)) ?? Buffer.alloc(0);
      const read = newLines(data, state.cursors?.[file.key]);
      cursors[file.key] = read.cursor;
      for (const { n, text: line } of read.lines) {
        if (!line.trim()) continue;
        const parsed = parseLine(line);
        if (typeof parsed === 'string') {
          invalid++;
          if (problems.length < MAX_PROBLEMS) problems.push(`${file.uri}:${n}: ${parsed}`);
          continue;
        }
        let messages = parsed.messages;
        if (spec.redactPii) {
          messages = messages.map((m) => {
            const r = redactPii(m.content);
            redactions += r.count;
            return { ...m, content: r.text };
          });
        }
        const digest = digestOf(messages);
        if (seen.has(digest)) {
          duplicates++;
          continue;
        }
        seen.add(digest);
        digests.push(digest);
        rows.push(
          JSON.stringify({
            id: digest.slice(0, 16),
            messages,
            ...(parsed.task ? { task: parsed.task } : {}),
            meta: { source: `${file.key}:${n}` },
          }),
        );
      }
    }
    const last = files.length ? files[files.length - 1]!.key : null;
    const watermark = last !== null && (state.watermark === null || last > state.watermark) ? last : state.watermark;
    const remainingFiles = pending.length - files.length;
    if (rows.length === 0) {
      return {
        promptsUri: null,
        digestsUri: null,
        prompts: 0,
        files: files.length,
        duplicates,
        invalid,
        problems,
        redactions,
        watermark,
        cursors,
        remainingFiles,
      };
    }
    const dir = joinUri(resolveUri(spec.template.artifacts.uri, deps.baseDir), 'flywheel', spec.name, `round-${round}`);
    const promptsUri = joinUri(dir, 'prompts.jsonl');
    const digestsUri = joinUri(dir, 'digests.txt');
    await store.put(promptsUri, rows.join('\n') + '\n');
    await store.put(digestsUri, digests.join('\n') + '\n');
    return {
      promptsUri,
      digestsUri,
      prompts: rows.length,
      files: files.length,
      duplicates,
      invalid,
      problems,
      redactions,
      watermark,
      cursors,
      remainingFiles,
    };
  }

  return { loadFlywheelState, commitFlywheelState, collectPrompts };
}
