// docs/how-it-works.md cannot rot: its generator runs here in short mode (small counts, a
// scratch directory), against the built CLIs (dist/, which npm test builds first), strace and
// python3. The document must have every section, with output captured from the runs, and
// every chart must be an SVG that draws data.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BACKENDS, ROOT, run } from './helpers.js';

const SECTIONS = [
  '## 1. One echo client under `select()`',
  '## 2. The same through `poll()` and `epoll`: system calls per 10,000 messages',
  '## 3. Why `select()` stops at FD_SETSIZE, and what the package does',
  '## 4. The cost of idle connections, per backend',
  '## 5. `loopSync()` vs `loop()`: the thread bridge',
  '## 6. The path of one byte, from the kernel to `handleRead()`',
  '## 7. A timeline of one recorded trace',
];
const CHARTS = ['idle-cost.svg', 'syscalls.svg', 'timeline.svg'];

/**
 * The tour compares select, poll and epoll, so it is drawn by a build that has epoll. Where the
 * addon under test has none (the forced-fallback build that CI also runs the suite against),
 * the generator and the CLIs it starts load the default build instead of ASYNCORE_ADDON's.
 */
function tourEnv(): NodeJS.ProcessEnv {
  if (BACKENDS.includes('epoll')) return process.env;
  const env = { ...process.env };
  delete env['ASYNCORE_ADDON'];
  return env;
}

describe('the how-it-works tour, generated in short mode', () => {
  let out = '';
  let doc = '';
  let log = '';

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'asyncore-tour-'));
    const result = await run(process.execPath, [join(ROOT, 'docs', 'tour', 'generate.mjs'), '--short', '--out', out], {
      timeoutMs: 110_000,
      env: tourEnv(),
    });
    log = result.stderr;
    expect(result.code, log).toBe(0);
    doc = readFileSync(join(out, 'how-it-works.md'), 'utf8');
  }, 120_000);

  afterAll(() => {
    if (out !== '') rmSync(out, { recursive: true, force: true });
  });

  it('has every section, in order, each with the command that reproduces it', () => {
    const positions = SECTIONS.map((heading) => doc.indexOf(heading));
    expect(
      positions.every((p) => p >= 0),
      `missing sections in:\n${doc}`,
    ).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    const parts = doc.split(/^## \d\. /m).slice(1);
    expect(parts).toHaveLength(SECTIONS.length);
    for (const part of parts) expect(part).toContain('> Reproduce: `');
  });

  it('shows what the real runs printed: CLI trace lines, strace counts, the RangeError, measured timings', () => {
    // The trace lines come from asyncore-echo --trace, whatever their exact format: the
    // listening line, then lines that name the select backend.
    expect(doc).toMatch(/listening on 127\.0\.0\.1:\d+/);
    expect(doc).toMatch(/^.*select.*$/m);
    // The three sets, recorded through the trace option: the listener in the read set.
    expect(doc).toMatch(/^\| 0 \| \{\d+\} \| \{\} \| \{\d+\} \| \d+: IN \|/m);
    // strace counted the wait of each backend.
    for (const call of ['pselect6', 'poll', 'epoll_wait', 'recvfrom', 'sendto'])
      expect(doc).toMatch(new RegExp(`^\\| \`${call}\` \\|`, 'm'));
    expect(doc).toMatch(
      /select +threw RangeError: fd \d{4,} is beyond what select\(\) can watch .*use backend 'poll' or 'epoll'/,
    );
    expect(doc).toMatch(/epoll +watched fd \d{4,}, accepted 1 connection/);
    expect(doc).toContain('ValueError: filedescriptor out of range in select()');
    expect(doc).toMatch(/^\| `loop\(\)` \(`--mode thread`\) \| [\d,.]+ \|$/m);
  });

  it('links source lines that exist and hold the code the text names', () => {
    const links = [...doc.matchAll(/\]\(\.\.\/([\w/.]+)#L(\d+)\) \(([\w/.]+):(\d+)\)/g)];
    expect(links.length).toBeGreaterThanOrEqual(10);
    for (const [, file, line, shownFile, shownLine] of links) {
      expect(shownFile).toBe(file);
      expect(shownLine).toBe(line);
      const lines = readFileSync(join(ROOT, file as string), 'utf8').split('\n');
      expect(Number(line)).toBeLessThanOrEqual(lines.length);
    }
    const recvLink = links.find(([, file]) => file === 'native/socket.cc');
    const recvLine = readFileSync(join(ROOT, 'native/socket.cc'), 'utf8').split('\n')[Number(recvLink?.[2]) - 1];
    expect(recvLine).toContain('::recv(');
  });

  it('draws every chart as an SVG with marks from the data, and links it', () => {
    expect(
      readdirSync(join(out, 'tour'))
        .filter((f) => f.endsWith('.svg'))
        .sort(),
    ).toEqual(CHARTS);
    for (const name of CHARTS) {
      const svg = readFileSync(join(out, 'tour', name), 'utf8');
      expect(svg.startsWith('<svg'), name).toBe(true);
      expect(svg.trimEnd().endsWith('</svg>'), name).toBe(true);
      // vega draws the data in role-mark groups (axes, legends and titles have other roles),
      // one path per bar, line or point, labelled with its values.
      const groups = [...svg.matchAll(/<g class="mark-\w+ role-mark[^>]*>([\s\S]*?)<\/g>/g)];
      const marks = groups.flatMap(
        (g) => (g[1] as string).match(/<path [^>]*aria-label="[^"]*\d[^"]*"[^>]*d="M/g) ?? [],
      );
      expect(marks.length, name).toBeGreaterThanOrEqual(4);
      expect(doc).toContain(`](tour/${name})`);
    }
  });
});
