// select() cannot watch an fd >= FD_SETSIZE (1024). The package must say so with a RangeError
// that names the fd and points to poll/epoll, and never write outside an fd_set; poll and
// epoll must serve such fds. A child process with `ulimit -n 4096` opens > 1024 fds first
// (test/fixtures/fd-setsize.mjs) and reports what each backend did, in both loop modes.
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { BACKENDS, DIST, ROOT, run } from './helpers.js';

const FD_SETSIZE = 1024;
const SCRIPT = join(ROOT, 'test', 'fixtures', 'fd-setsize.mjs');
/** The backends that must serve fds above the limit: poll, and epoll where it is built. */
const UNLIMITED = (['poll', 'epoll'] as const).filter((name) => BACKENDS.includes(name));

type Outcome = string | { name: string; message: string };

interface SelectCase {
  /** The dispatcher's fd (>= 1024). */
  fd: number;
  outcome: Outcome;
}

interface Report {
  /** fds of the dispatchers meant to be above the limit. */
  fds: number[];
  /** fds of the select round trips after the low fds were freed. */
  lowFds: number[];
  select: Record<'sync' | 'thread' | 'threadWithoutLowFds', SelectCase>;
  poll: Record<'sync' | 'thread', Outcome>;
  epoll: Partial<Record<'sync' | 'thread', Outcome>>;
  selectBelowLimit: Record<'sync' | 'thread', Outcome>;
}

/** Checks a RangeError that names an fd >= FD_SETSIZE and points to poll/epoll; returns that fd. */
function expectSelectRangeError(outcome: Outcome): number {
  expect(typeof outcome, JSON.stringify(outcome)).toBe('object');
  if (typeof outcome !== 'object') return -1;
  expect(outcome.name, outcome.message).toBe('RangeError');
  expect(outcome.message).toMatch(/poll/);
  expect(outcome.message).toMatch(/epoll/);
  const named = /fd (\d+)/.exec(outcome.message);
  expect(named, outcome.message).not.toBeNull();
  const fd = Number(named?.[1]);
  expect(fd).toBeGreaterThanOrEqual(FD_SETSIZE);
  return fd;
}

let report: Report;
let childOutput = '';

beforeAll(async () => {
  const result = await run(
    'bash',
    ['-c', 'ulimit -n 4096 && exec "$0" "$1" "$2"', process.execPath, SCRIPT, join(DIST, 'index.js')],
    { timeoutMs: 20_000 },
  );
  childOutput = `${result.stdout}${result.stderr}`;
  // The child survived every case, a select() failure included, and said so.
  expect(result.code, childOutput).toBe(0);
  report = JSON.parse(result.stdout.trim()) as Report;
});

describe('with fds above FD_SETSIZE', () => {
  it('the dispatchers under test really got fds >= 1024 (and low ones once fds were freed)', () => {
    // 3 select servers, then a server and a client for each of poll/epoll x sync/thread.
    expect(report.fds, childOutput).toHaveLength(3 + 2 * 2 * UNLIMITED.length);
    for (const fd of report.fds) expect(fd).toBeGreaterThanOrEqual(FD_SETSIZE);
    for (const fd of report.lowFds) expect(fd).toBeLessThan(FD_SETSIZE);
  });

  it.each(['sync', 'thread'] as const)(
    'select throws a RangeError naming the fd and suggesting poll/epoll (%s)',
    (mode) => {
      const { fd, outcome } = report.select[mode];
      expect(fd).toBeGreaterThanOrEqual(FD_SETSIZE);
      expect(expectSelectRangeError(outcome)).toBe(fd);
    },
  );

  it('loop() with select says the same when even its own wake-up fd is above the limit', () => {
    // No fd below 1024 is free here, so the loop's own eventfd gets a number select cannot hold.
    expectSelectRangeError(report.select.threadWithoutLowFds.outcome);
  });

  it.each(['sync', 'thread'] as const)('poll and epoll serve such an fd: an echo round trip (%s)', (mode) => {
    expect(UNLIMITED).toContain('poll');
    for (const backend of UNLIMITED) expect(report[backend][mode], `${backend}: ${childOutput}`).toBe('ping');
  });

  it.each(['sync', 'thread'] as const)('select works on in the same process once fds are low again (%s)', (mode) => {
    expect(report.selectBelowLimit[mode], childOutput).toBe('ping');
  });
});
