/**
 * References from code and docs into the project's own docs must land on something: every `docs/<page>.md#anchor`
 * (and every relative `page.md#anchor` link inside docs/) names a heading or an explicit `<a id>` that exists. The
 * design rules are cited this way (docs/design.md#rule-<n>), so a renumbered or deleted rule fails here.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve('.');
const tracked = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
  .toString()
  .split('\n')
  .filter((f) => /\.(ts|mjs|py|md|ya?ml|sh)$/.test(f) && !f.startsWith('tests/replay/histories/') && fs.existsSync(f));

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = fs.readFileSync(file, 'utf8');
  const anchors = new Set<string>();
  for (const m of text.matchAll(/<a id="([^"]+)"><\/a>/g)) anchors.add(m[1]!);
  for (const m of text.matchAll(/^#{1,6} (.+)$/gm)) anchors.add(slug(m[1]!));
  return anchors;
}

interface Ref {
  from: string;
  line: number;
  doc: string;
  anchor: string;
}

function references(): Ref[] {
  const refs: Ref[] = [];
  for (const file of tracked) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, i) => {
      // docs/<page>.md#<anchor> anywhere (code comments, README, docs); "#rule-6" right after one cites the same page
      for (const m of text.matchAll(/docs\/([\w./-]+\.md)#([\w-]+)(?![\w<-])((?:,? and #[\w-]+|, #[\w-]+)*)/g)) {
        const doc = path.join('docs', m[1]!);
        refs.push({ from: file, line: i + 1, doc, anchor: m[2]! });
        for (const more of m[3]!.matchAll(/#([\w-]+)/g)) refs.push({ from: file, line: i + 1, doc, anchor: more[1]! });
      }
      // relative Markdown links inside docs/: (page.md#anchor)
      if (file.startsWith('docs/')) {
        for (const m of text.matchAll(/\]\(((?!https?:)[\w./-]*\.md)#([\w-]+)\)/g)) {
          refs.push({ from: file, line: i + 1, doc: path.join(path.dirname(file), m[1]!), anchor: m[2]! });
        }
      }
    });
  }
  return refs;
}

describe('links into the docs', () => {
  const refs = references();

  it('finds the design-rule citations (the scan itself works)', () => {
    expect(refs.filter((r) => r.doc === 'docs/design.md').length).toBeGreaterThan(20);
  });

  it('every cited anchor exists in the cited page', () => {
    const cache = new Map<string, Set<string> | null>();
    const broken = refs.filter((r) => {
      if (!cache.has(r.doc)) cache.set(r.doc, fs.existsSync(r.doc) ? anchorsOf(r.doc) : null);
      return !cache.get(r.doc)?.has(r.anchor);
    });
    expect(broken.map((r) => `${r.from}:${r.line}: ${r.doc}#${r.anchor}`)).toEqual([]);
  });

  it('no citation of the old, out-of-repository DESIGN.md', () => {
    const stale = tracked.filter((f) => /DESIGN rules? \d/.test(fs.readFileSync(f, 'utf8')));
    expect(stale).toEqual([]);
  });

  it.each([
    [
      'Rule 3: Deterministic job identity, independent of the attempt',
      'rule-3-deterministic-job-identity-independent-of-the-attempt',
    ],
    ['Layers', 'layers'],
    ['What `runStage` does', 'what-runstage-does'],
  ])('slug(%s) = %s', (heading, want) => {
    expect(slug(heading)).toBe(want);
  });
});
