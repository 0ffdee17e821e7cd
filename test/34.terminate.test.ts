// A worker_thread blocked in loopSync() ends promptly when it is terminated: by
// worker.terminate(), or by process.exit() of the main thread (which terminates every
// worker), whatever loopSync()'s timeout, on every backend. And watching for termination
// costs no CPU while the worker's own libuv loop has I/O that nobody services. Each case
// runs in a child process (test/fixtures/sync-worker.mjs, loading the built package), so a
// worker that never ends is a child killed at its limit rather than a hung test run.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS, DIST, ROOT, killAll } from './helpers.js';

const INDEX = join(DIST, 'index.js');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'sync-worker.mjs');
/** How long a termination may take on a loaded machine; it takes a few ms when idle. */
const PROMPT_MS = 2000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** When stdout first said "exiting", and when the child had exited (performance.now()). */
  exitingAt: number | null;
  closedAt: number;
}

const children: ChildProcess[] = [];

afterEach(() => killAll(children));

/** `node sync-worker.mjs <dist/index.js> <backend> <scenario>`, killed after limitMs. */
function runChild(backend: string, scenario: string, limitMs = 20_000): Promise<Run> {
  const child = spawn(process.execPath, [FIXTURE, INDEX, backend, scenario], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  let exitingAt: number | null = null;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (exitingAt === null && stdout.includes('exiting\n')) exitingAt = performance.now();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const limit = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const closedAt = performance.now();
      clearTimeout(limit);
      // The pipes may still hold the last lines: wait for them before resolving.
      child.on('close', () => resolve({ code, signal, stdout, stderr, exitingAt, closedAt }));
    });
  });
}

interface Termination {
  timeout: string;
  exitCode: number;
  ms: number;
}

function lines(stdout: string): unknown[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as unknown);
}

describe.each(BACKENDS)('a worker in loopSync() on %s', (backend) => {
  it('ends at once on worker.terminate(), with timeout 30 and with Infinity', async () => {
    const run = await runChild(backend, 'terminate');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const terminations = lines(run.stdout) as Termination[];
    expect(terminations.map((t) => [t.timeout, t.exitCode])).toEqual([
      ['30', 1],
      ['Infinity', 1],
    ]);
    for (const t of terminations) expect(t.ms).toBeLessThan(PROMPT_MS);
  });

  it('does not hold up process.exit() of the main thread', async () => {
    const run = await runChild(backend, 'exit');
    expect(run.stderr).toBe('');
    expect(run.signal).toBeNull();
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('exiting\n');
    expect(run.exitingAt).not.toBeNull();
    expect(run.closedAt - (run.exitingAt ?? 0)).toBeLessThan(PROMPT_MS);
  });

  it('waits without spinning while its libuv loop has unserviced I/O, and still ends on terminate()', async () => {
    const run = await runChild(backend, 'pending');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const [wait, termination] = lines(run.stdout) as [{ wallMs: number; cpuMs: number }, Termination];
    // The wait keeps its length: the loop's fd firing does not end it early.
    expect(wait.wallMs).toBeGreaterThanOrEqual(990);
    // A spinning wait would burn about its whole second; a back-off of 100 ms costs a few ms.
    expect(wait.cpuMs).toBeLessThan(250);
    expect(termination.exitCode).toBe(1);
    expect(termination.ms).toBeLessThan(PROMPT_MS);
  });
});
