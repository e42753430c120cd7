// The design the code cites lives in the repository: every `docs/design/...` path named in a comment of a .ts file
// exists, every `#anchor` on it matches a heading of that markdown file (GitHub slug rules), the links between the
// design pages resolve, and no source file cites the design documents that used to live outside the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(__dirname, '..', '..');
const designDir = join(root, 'docs', 'design');

/** Folders never scanned: dependencies, version control, local state and recorded test output. */
const skipped = new Set(['node_modules', 'dist', join('test', 'artifacts')]);

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name.startsWith('.') || skipped.has(entry.name) || skipped.has(relative(root, path))) continue;
      sourceFiles(path, out);
    } else if (entry.isFile() && entry.name.endsWith('.ts')) {
      out.push(path);
    }
  }
  return out;
}

/** One comment of a source file, with the line it starts on. */
interface Comment {
  line: number;
  text: string;
}

// A `/` after one of these (or at the start) begins a regular expression literal, not a division.
const regexAfterChar = new Set([...'(,=:[!&|?{};+-*%<>~^']);
const regexAfterWord = /\b(?:return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await)$/;

/**
 * The comments of TypeScript source: `//` and `/* *\/` outside strings, template literals (with their `${}`
 * expressions) and regular expression literals. Good enough for this repository's code; it is not a parser.
 */
function commentsOf(src: string): Comment[] {
  const comments: Comment[] = [];
  // Each entry is an open template literal's count of `{` seen inside its current `${ ... }`.
  const templates: number[] = [];
  let line = 1;
  let i = 0;
  let lastSignificant = '';
  const advance = (to: number) => {
    for (let k = i; k < to && k < src.length; k++) if (src[k] === '\n') line++;
    i = to;
  };
  const skipQuoted = (quote: string) => {
    let k = i + 1;
    while (k < src.length && src[k] !== quote && src[k] !== '\n') k += src[k] === '\\' ? 2 : 1;
    advance(k + 1);
  };
  /** Reads template text from i (just after a backtick or a closing `}`) up to its end or the next `${`. */
  const skipTemplateText = () => {
    let k = i;
    while (k < src.length) {
      if (src[k] === '\\') k += 2;
      else if (src[k] === '`') {
        templates.pop();
        advance(k + 1);
        lastSignificant = '`';
        return;
      } else if (src[k] === '$' && src[k + 1] === '{') {
        templates[templates.length - 1] = 0;
        advance(k + 2);
        lastSignificant = '{';
        return;
      } else k++;
    }
    advance(k);
  };

  while (i < src.length) {
    const c = src[i]!;
    const next = src[i + 1];
    if (c === '/' && next === '/') {
      const end = src.indexOf('\n', i);
      const stop = end === -1 ? src.length : end;
      comments.push({ line, text: src.slice(i + 2, stop) });
      advance(stop);
    } else if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? src.length : end + 2;
      comments.push({ line, text: src.slice(i + 2, end === -1 ? src.length : end) });
      advance(stop);
    } else if (c === "'" || c === '"') {
      skipQuoted(c);
      lastSignificant = c;
    } else if (c === '`') {
      templates.push(0);
      advance(i + 1);
      skipTemplateText();
    } else if (c === '{' && templates.length > 0) {
      templates[templates.length - 1]! += 1;
      advance(i + 1);
      lastSignificant = c;
    } else if (c === '}' && templates.length > 0 && templates[templates.length - 1] === 0) {
      advance(i + 1);
      skipTemplateText();
    } else if (c === '/') {
      const before = src.slice(Math.max(0, i - 12), i);
      if (lastSignificant === '' || regexAfterChar.has(lastSignificant) || regexAfterWord.test(before.trimEnd())) {
        let k = i + 1;
        let inClass = false;
        while (k < src.length && src[k] !== '\n') {
          if (src[k] === '\\') k += 2;
          else if (src[k] === '[') (inClass = true), k++;
          else if (src[k] === ']') (inClass = false), k++;
          else if (src[k] === '/' && !inClass) break;
          else k++;
        }
        advance(k + 1);
        lastSignificant = 'a';
      } else {
        advance(i + 1);
        lastSignificant = c;
      }
    } else {
      if (c === '}' && templates.length > 0) templates[templates.length - 1]! -= 1;
      if (!/\s/.test(c)) lastSignificant = c;
      advance(i + 1);
    }
  }
  return comments;
}

/** A `docs/design/...` reference: the repository path and the anchor, if any. */
interface Citation {
  path: string;
  anchor?: string;
}

const citationPattern = /docs\/design\/[A-Za-z0-9_./-]*(?:#[A-Za-z0-9_-]+)?/g;

/** The design citations in a piece of comment text (a trailing `.` ends the sentence, not the path). */
function citationsIn(text: string): Citation[] {
  return [...text.matchAll(citationPattern)].map((m) => {
    const [path, anchor] = m[0].split('#') as [string, string | undefined];
    const clean = path.replace(/\.+$/, '');
    return anchor ? { path: clean, anchor } : { path: clean };
  });
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen. */
function githubSlug(heading: string): string {
  return heading
    .replace(/\s+#+\s*$/, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]*>/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every heading anchor of a markdown text, numbered like GitHub numbers repeated headings (`x`, `x-1`, ...). */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const f = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (f) {
      if (fence === undefined) fence = f[1]![0];
      else if (f[1]![0] === fence) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    const h = /^\s{0,3}#{1,6}\s+(.*)$/.exec(line);
    if (!h) continue;
    const base = githubSlug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOfFile(file: string): Set<string> {
  let anchors = anchorCache.get(file);
  if (!anchors) {
    anchors = anchorsOf(readFileSync(file, 'utf8'));
    anchorCache.set(file, anchors);
  }
  return anchors;
}

/** What is wrong with one citation, or undefined when it resolves. */
function checkCitation(c: Citation): string | undefined {
  const target = resolve(root, c.path);
  if (target !== designDir && !target.startsWith(designDir + sep)) return `${c.path} is outside docs/design`;
  if (!existsSync(target)) return `${c.path} does not exist`;
  if (c.anchor === undefined) return undefined;
  if (!statSync(target).isFile() || !target.endsWith('.md')) return `${c.path}#${c.anchor}: an anchor needs a markdown file`;
  return anchorsOfFile(target).has(c.anchor) ? undefined : `${c.path} has no heading with the anchor #${c.anchor}`;
}

// Built from parts so that this file does not itself name them.
const outsideDocs = new RegExp(`\\b(?:${['CONTRACTS', 'ARCHITECTURE', 'STYLE'].join('|')})\\.md\\b`);

test('the comment scanner finds citations in comments only, and reports a broken one', () => {
  const src = [
    "const a = 'docs/design/nowhere.md'; // see docs/design/contracts/registry.md#operation-records.",
    'const b = `x ${c /* docs/design/architecture.md#folders */} docs/design/nowhere.md`;',
    'const r = /[/]docs\\/design\\//g; const d = a / 2; // docs/design/contracts/registry.md#no-such-heading',
    '/**',
    ' * (docs/design/missing.md)',
    ' */',
  ].join('\n');
  const found = commentsOf(src).flatMap((cm) => citationsIn(cm.text).map((c) => ({ ...c, line: cm.line })));
  assert.deepEqual(found, [
    { path: 'docs/design/contracts/registry.md', anchor: 'operation-records', line: 1 },
    { path: 'docs/design/architecture.md', anchor: 'folders', line: 2 },
    { path: 'docs/design/contracts/registry.md', anchor: 'no-such-heading', line: 3 },
    { path: 'docs/design/missing.md', line: 4 },
  ]);
  assert.deepEqual(found.map((c) => checkCitation(c)), [
    undefined,
    undefined,
    'docs/design/contracts/registry.md has no heading with the anchor #no-such-heading',
    'docs/design/missing.md does not exist',
  ]);
});

test('heading anchors follow GitHub slug rules', () => {
  assert.equal(githubSlug('Checks common to all requests (before any state is read)'), 'checks-common-to-all-requests-before-any-state-is-read');
  assert.equal(githubSlug('manageNs and manageServ'), 'managens-and-manageserv');
  assert.equal(githubSlug('The `kubernetes` driver: v2.17'), 'the-kubernetes-driver-v217');
  assert.deepEqual([...anchorsOf('# A\n```\n# not a heading\n```\n## A\n### B ##\n')], ['a', 'a-1', 'b']);
});

test('every docs/design citation in a source comment names a file that exists, and a heading that exists', () => {
  const problems: string[] = [];
  let count = 0;
  for (const file of sourceFiles(root)) {
    for (const comment of commentsOf(readFileSync(file, 'utf8'))) {
      for (const c of citationsIn(comment.text)) {
        count += 1;
        const problem = checkCitation(c);
        if (problem) problems.push(`${relative(root, file)}:${comment.line}: ${problem}`);
      }
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(count > 0, 'no design citation found at all: the scanner is broken');
});

test('no source file cites the design documents that used to live outside the repository', () => {
  const offenders = sourceFiles(root)
    .map((file) => ({ file: relative(root, file), lines: readFileSync(file, 'utf8').split('\n') }))
    .flatMap(({ file, lines }) => lines.flatMap((text, i) => (outsideDocs.test(text) ? [`${file}:${i + 1}: ${text.trim()}`] : [])));
  assert.deepEqual(offenders, []);
});

test('links between the design pages resolve, anchors included', () => {
  const pages = (function walk(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  })(designDir);
  assert.ok(pages.length > 0);
  const problems: string[] = [];
  for (const page of pages) {
    const text = readFileSync(page, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      if (/^[a-z]+:/i.test(link)) continue;
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path === '' ? page : resolve(dirname(page), path);
      const where = `${relative(root, page)}: ${link}`;
      if (!existsSync(target)) problems.push(`${where}: ${relative(root, target)} does not exist`);
      else if (anchor !== undefined && target.endsWith('.md') && !anchorsOfFile(target).has(anchor)) problems.push(`${where}: no heading #${anchor}`);
    }
  }
  assert.deepEqual(problems, []);
});
