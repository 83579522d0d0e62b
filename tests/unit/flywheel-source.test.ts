/** The flywheel's incremental log reading: cursors per file, lines being written, backlog shares. */
import { describe, expect, it } from 'vitest';
import { filesForRound, newLines, pendingFiles } from '../../activities/flywheel-source.js';

const buf = (s: string) => Buffer.from(s, 'utf8');

describe('newLines', () => {
  it('reads complete lines past the cursor, numbered in the file, and moves the cursor', () => {
    const first = newLines(buf('{"a":1}\n{"a":2}\n'));
    expect(first.lines).toEqual([
      { n: 1, text: '{"a":1}' },
      { n: 2, text: '{"a":2}' },
    ]);
    expect(first.cursor).toEqual({ bytes: 16, lines: 2 });
    const appended = newLines(buf('{"a":1}\n{"a":2}\n{"a":3}\n'), first.cursor);
    expect(appended.lines).toEqual([{ n: 3, text: '{"a":3}' }]);
    expect(newLines(buf('{"a":1}\n{"a":2}\n'), first.cursor)).toEqual({ lines: [], cursor: first.cursor });
  });

  it('leaves a last line being written for later, and reads it once it is finished', () => {
    const partial = newLines(buf('{"a":1}\n{"messages": [{"ro'));
    expect(partial.lines.map((l) => l.text)).toEqual(['{"a":1}']);
    expect(partial.cursor).toEqual({ bytes: 8, lines: 1 });
    const done = newLines(buf('{"a":1}\n{"messages": [{"role": "user"}]}\n'), partial.cursor);
    expect(done.lines).toEqual([{ n: 2, text: '{"messages": [{"role": "user"}]}' }]);
  });

  it('takes a whole JSON last line without newline, and does not count its late newline as a line', () => {
    const whole = newLines(buf('{"a":1}\n{"a":2}'));
    expect(whole.lines.map((l) => l.n)).toEqual([1, 2]);
    expect(whole.cursor).toEqual({ bytes: 15, lines: 2 });
    const next = newLines(buf('{"a":1}\n{"a":2}\n{"a":3}\n'), whole.cursor);
    expect(next.lines).toEqual([{ n: 3, text: '{"a":3}' }]);
  });

  it('keeps blank lines in the numbering and starts over on a file shorter than its cursor', () => {
    expect(newLines(buf('{"a":1}\n\n{"a":3}\n')).lines.map((l) => [l.n, l.text])).toEqual([
      [1, '{"a":1}'],
      [2, ''],
      [3, '{"a":3}'],
    ]);
    expect(newLines(buf('{"b":1}\n'), { bytes: 100, lines: 9 }).lines).toEqual([{ n: 1, text: '{"b":1}' }]);
  });
});

describe('pendingFiles and filesForRound', () => {
  const src = 'file:///logs/';
  const listing = [
    { uri: `${src}2026-11-23.jsonl`, size: 30 },
    { uri: `${src}2026-11-21.jsonl`, size: 50 },
    { uri: `${src}2026-11-22.jsonl`, size: 40 },
    { uri: `${src}notes.txt`, size: 5 },
  ];

  it('new files in key order; read files only when they grew; legacy files at or below the watermark skipped', () => {
    expect(pendingFiles(listing, src, { watermark: null }).map((f) => f.key)).toEqual([
      '2026-11-21.jsonl',
      '2026-11-22.jsonl',
      '2026-11-23.jsonl',
    ]);
    const cursors = { '2026-11-21.jsonl': { bytes: 50, lines: 3 }, '2026-11-22.jsonl': { bytes: 20, lines: 1 } };
    expect(pendingFiles(listing, src, { watermark: '2026-11-22.jsonl', cursors }).map((f) => f.key)).toEqual([
      '2026-11-22.jsonl',
      '2026-11-23.jsonl',
    ]);
    expect(pendingFiles(listing, src, { watermark: '2026-11-22.jsonl' }).map((f) => f.key)).toEqual([
      '2026-11-23.jsonl',
    ]);
  });

  it('shares a backlog evenly over the rounds left, at least one file a round', () => {
    expect([
      filesForRound(3, 3),
      filesForRound(10, 3),
      filesForRound(2, 5),
      filesForRound(4, 1),
      filesForRound(0, 2),
    ]).toEqual([1, 4, 1, 4, 1]);
  });
});
