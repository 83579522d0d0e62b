/**
 * Reading the flywheel's log source incrementally: which files have unread lines, which of them the next round
 * takes, and the complete lines past a file's cursor.
 *
 * Log files grow while they are written (a day's file is appended to all day), so the flywheel keeps a cursor
 * per file (bytes and lines consumed) instead of only a watermark on file names: lines appended to a file it
 * has read are read by the next round. A last line without its newline is still being written: it is left
 * for later unless it is already a whole JSON document (a writer that never ends its last line).
 *
 * State from before cursors existed has only the watermark: a file at or below it without a cursor was read
 * whole back then and is skipped, as it was; every file read from now on gets a cursor.
 */
import type { FileCursor } from '../common/types.js';

export interface SourceFile {
  uri: string;
  /** Key relative to the source prefix (what the watermark and cursors are keyed by). */
  key: string;
  size: number;
}

/** Files with bytes past their cursor, in key order. */
export function pendingFiles(
  listing: { uri: string; size: number }[],
  source: string,
  state: { watermark: string | null; cursors?: Record<string, FileCursor> },
): SourceFile[] {
  const cursors = state.cursors ?? {};
  return listing
    .map((o) => ({ uri: o.uri, key: o.uri.slice(source.length), size: o.size }))
    .filter((f) => f.key.endsWith('.jsonl'))
    .filter((f) => {
      const cursor = cursors[f.key];
      if (cursor) return f.size > cursor.bytes;
      return state.watermark === null || f.key > state.watermark;
    })
    .sort((a, b) => (a.key < b.key ? -1 : 1));
}

/**
 * How many of the pending files the next round should take so that `roundsLeft` rounds of this run share the
 * backlog evenly (a backlog of three days over three rounds: a day each); at least one.
 */
export function filesForRound(pending: number, roundsLeft: number): number {
  return Math.max(1, Math.ceil(pending / Math.max(1, roundsLeft)));
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The complete lines of `data` past `cursor` (numbered from 1 in the file) and the cursor after them. */
export function newLines(
  data: Buffer,
  cursor: FileCursor = { bytes: 0, lines: 0 },
): { lines: { n: number; text: string }[]; cursor: FileCursor } {
  // a file replaced by a shorter one (rotated, rewritten) starts over
  const start = data.length < cursor.bytes ? { bytes: 0, lines: 0 } : cursor;
  let from = start.bytes;
  // a last line taken whole before its newline came: that newline ends it, it starts no new line
  if (from > 0 && data[from - 1] !== 0x0a && data[from] === 0x0a) from += 1;
  let end = Math.max(from, data.lastIndexOf(0x0a) + 1); // up to and including the last newline
  const tail = data.subarray(end).toString('utf8');
  if (tail.trim() && isJson(tail)) end = data.length;
  const text = data.subarray(from, end).toString('utf8');
  const parts = text.split('\n');
  if (parts[parts.length - 1] === '') parts.pop();
  return {
    lines: parts.map((t, i) => ({ n: start.lines + i + 1, text: t })),
    cursor: { bytes: end, lines: start.lines + parts.length },
  };
}
