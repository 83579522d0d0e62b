/** The flywheel's incremental log reading: cursors per file, lines being written, backlog shares. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../activities/artifacts/open-store.js';
import { createFlywheelActivities } from '../../activities/flywheel.js';
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

describe('collectPrompts on a file:// log prefix', () => {
  it('names a bad line by file and line, never by its text', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tao-fw-'));
    fs.mkdirSync(path.join(dir, 'logs'));
    const secret = 'SECRET-9041 my password is hunter2';
    fs.writeFileSync(
      path.join(dir, 'logs', 'day.jsonl'),
      [
        JSON.stringify({ messages: [{ role: 'user', content: 'hello' }] }),
        `${secret} {"messages": [`,
        JSON.stringify({ messages: [{ role: 'user', content: { secret } }] }),
      ].join('\n') + '\n',
    );
    const root = pathToFileURL(dir).href;
    const { collectPrompts } = createFlywheelActivities({ storeFor: openStore, baseDir: dir });
    const spec = {
      name: 'fw',
      source: { uri: `${root}/logs/` },
      minNewPrompts: 1,
      template: { artifacts: { uri: root } },
    } as unknown as Parameters<typeof collectPrompts>[0]['spec'];
    const r = await collectPrompts({ spec, state: { round: 0, watermark: null, seen: [] }, round: 1 });
    expect(r.prompts).toBe(1);
    expect(r.invalid).toBe(2);
    expect(r.problems).toEqual([
      `${root}/logs/day.jsonl:2: not JSON`,
      `${root}/logs/day.jsonl:3: messages.0.content: not text`,
    ]);
    expect(JSON.stringify(r)).not.toContain('SECRET');
    expect(r.cursors).toEqual({
      'day.jsonl': { bytes: fs.statSync(path.join(dir, 'logs', 'day.jsonl')).size, lines: 3 },
    });
  });
});
