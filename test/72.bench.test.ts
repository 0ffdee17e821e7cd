// The benchmark tooling that does not measure: bench/report.mjs, which redraws a report from
// the figures a run recorded (so the report can change without the 13-minute run), and the
// nginx peer of bench/http, which must start on a loopback port from a temporary prefix, serve
// the hello page the other servers serve, and leave nothing behind once stopped by its PID.
// No figure is judged here: the recorded results.json is only the report's input.
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, type RunResult, killAll, run } from './helpers.js';

const children: ChildProcess[] = [];

/**
 * This run's environment without what makes a process load another addon build or a sanitizer
 * runtime (the CI runs of the suite against other builds): these programs load no addon, and
 * nginx, started from them, is not built with sanitizers.
 */
function plainEnv(): NodeJS.ProcessEnv {
  const dropped = ['ASYNCORE_ADDON', 'LD_PRELOAD', 'ASAN_OPTIONS', 'NODE_OPTIONS'];
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !dropped.includes(key)));
}

/** Runs node with `args` in the repository, killing it after `timeoutMs` (a safety net). */
function node(args: string[], timeoutMs: number): Promise<RunResult> {
  return run(process.execPath, args, { cwd: ROOT, env: plainEnv(), timeoutMs, children });
}

afterEach(() => killAll(children));

interface EchoResult {
  scenario: string;
  subject: string;
  pointKey: string;
  msgsPerS?: number;
  error?: string;
}

/** The markdown table under `heading`: its header cells and its rows' cells. */
function table(markdown: string, heading: string): { header: string[]; rows: string[][] } {
  const start = markdown.indexOf(`### ${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const lines = markdown.slice(start).split('\n').slice(2);
  const rows: string[][] = [];
  for (const line of lines) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
  }
  const [header = [], , ...body] = rows;
  return { header, rows: body };
}

describe('bench/report.mjs redraws a report from results.json alone', () => {
  let dir = '';
  let report: RunResult = { code: -1, stdout: '', stderr: '' };
  let markdown = '';
  const recorded = JSON.parse(readFileSync(join(ROOT, 'bench', 'results.json'), 'utf8')) as { echo: EchoResult[] };
  const HAND_WRITTEN = '# Echo benchmark results\n\nHand-written text before the markers.\n\n';
  const AFTER = '\n\n## After the markers\n\nKept as well.\n';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'asyncore-report-'));
    copyFileSync(join(ROOT, 'bench', 'results.json'), join(dir, 'results.json'));
    const stale =
      '<!-- BEGIN GENERATED: bench/run.mjs rewrites everything from here to the END marker -->\n' +
      'a stale table\n<!-- END GENERATED -->';
    writeFileSync(join(dir, 'RESULTS.md'), HAND_WRITTEN + stale + AFTER);
    report = await node(['bench/report.mjs', '--results', join(dir, 'results.json')], 60_000);
    markdown = existsSync(join(dir, 'RESULTS.md')) ? readFileSync(join(dir, 'RESULTS.md'), 'utf8') : '';
  }, 90_000);

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('writes RESULTS.md between the generated markers, keeping the text around them, and the charts', () => {
    expect(report.code, report.stderr).toBe(0);
    expect(markdown.startsWith(HAND_WRITTEN)).toBe(true);
    expect(markdown.endsWith(AFTER)).toBe(true);
    expect(markdown).not.toContain('a stale table');
    for (const chart of ['echo64.svg', 'idle.svg', 'memory.svg']) {
      expect(readFileSync(join(dir, 'charts', chart), 'utf8'), chart).toMatch(/^<svg /);
    }
  });

  it('gives every scenario table a vs node:net and a vs C column per point', () => {
    for (const heading of [
      'Echo, 64 B ping-pong, by connection count',
      'Echo, 16 KiB ping-pong, 50 connections',
      '1 active connection (64 B ping-pong) beside idle connections',
    ]) {
      const { header, rows } = table(markdown, heading);
      expect(header[0]).toBe('subject');
      const points = (header.length - 1) / 3;
      expect(points).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < points; i++) expect(header.slice(2 + 3 * i, 4 + 3 * i)).toEqual(['vs node:net', 'vs C']);
      // The references divided by themselves; every other measured cell is a ratio.
      const row = (label: string): string[] => rows.find((r) => r[0] === label) ?? [];
      for (let i = 0; i < points; i++) {
        expect(row('node:net')[2 + 3 * i], heading).toBe('1.00×');
        expect(row('C epoll (ceiling)')[3 + 3 * i], heading).toBe('1.00×');
      }
    }
  });

  it('computes vs C from the C server measured in the same run', () => {
    const at = (subject: string): number =>
      recorded.echo.find((r) => r.scenario === 'echo64' && r.subject === subject && r.pointKey === 'c50-i0-s64')
        ?.msgsPerS ?? NaN;
    const { header, rows } = table(markdown, 'Echo, 64 B ping-pong, by connection count');
    const column = header.indexOf('50 conns');
    expect(column).toBeGreaterThan(0);
    const epollSync = rows.find((r) => r[0] === 'asyncore epoll sync') ?? [];
    const ratio = at('asyncore-epoll-sync') / at('c-epoll');
    expect(Number.isFinite(ratio)).toBe(true);
    expect(epollSync[column]).toBe(Math.round(at('asyncore-epoll-sync')).toLocaleString('en-US'));
    expect(epollSync[column + 2]).toBe(`${ratio.toFixed(2)}×`);
  });
});

// The nginx peer, started and stopped through bench/http/lib.mjs by a small program; it reports
// the master's PID, the prefix and what GET / answered, then whether all of it is gone.
const NGINX_PROGRAM = `
import { existsSync, readFileSync } from 'node:fs';
import { fetchPage, nginxServer, start, stop } from './bench/http/lib.mjs';
import { HELLO } from './bench/http/hello.mjs';

const server = await start(nginxServer());
const pid = server.child.pid;
const children = readFileSync(\`/proc/\${pid}/task/\${pid}/children\`, 'utf8').trim().split(/\\s+/).map(Number);
const prefix = server.prefix;
const before = { port: server.port, pid, workers: children, prefix, prefixExisted: existsSync(prefix) };
const body = await fetchPage(server.port);
await stop(server.child);
await new Promise((resolve) => setTimeout(resolve, 100));
const gone = (p) => !existsSync(\`/proc/\${p}\`);
console.log(JSON.stringify({
  ...before,
  hello: body === HELLO,
  exit: server.child.exitCode,
  allGone: [pid, ...children].every(gone),
  prefixGone: !existsSync(prefix),
  refused: await fetchPage(server.port).then(() => false, (err) => err.code === 'ECONNREFUSED'),
}));
`;

describe('bench/http: the nginx peer', () => {
  it('runs one worker on a loopback port from a temporary prefix, serves the hello page, and is stopped by PID', async () => {
    expect(existsSync('/usr/sbin/nginx'), 'nginx-light is not installed').toBe(true);
    const result = await node(['--input-type=module', '-e', NGINX_PROGRAM], 60_000);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as {
      port: number;
      workers: number[];
      prefix: string;
      prefixExisted: boolean;
      hello: boolean;
      exit: number | null;
      allGone: boolean;
      prefixGone: boolean;
      refused: boolean;
    };
    expect(report.port).toBeGreaterThan(1024);
    expect(report.workers).toHaveLength(1);
    expect(report.prefix.startsWith(join(tmpdir(), 'bench-nginx-'))).toBe(true);
    expect(report.prefixExisted).toBe(true);
    expect(report.hello).toBe(true);
    expect(report.exit).toBe(0);
    expect(report.allGone).toBe(true);
    expect(report.prefixGone).toBe(true);
    expect(report.refused).toBe(true);
  }, 90_000);
});
