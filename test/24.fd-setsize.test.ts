// select() cannot watch an fd >= FD_SETSIZE (1024). The package must say so with a RangeError
// that names the fd and points to poll/epoll, and never write outside an fd_set; poll and
// epoll must serve such fds. A child process with `ulimit -n 4096` opens > 1024 fds first
// (test/fixtures/h1-fd-setsize.mjs) and reports what each backend did, in both loop modes.
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import { DIST, ROOT, run } from './helpers.js';

const FD_SETSIZE = 1024;
const SCRIPT = join(ROOT, 'test', 'fixtures', 'h1-fd-setsize.mjs');

type Outcome = string | { name: string; message: string };

interface Report {
  fds: number[];
  select: Record<'sync' | 'thread', Outcome>;
  poll: Record<'sync' | 'thread', Outcome>;
  epoll: Record<'sync' | 'thread', Outcome>;
  selectBelowLimit: Record<'sync' | 'thread', Outcome>;
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
  it('the dispatchers under test really got fds >= 1024', () => {
    const high = report.fds.filter((fd) => fd >= FD_SETSIZE);
    expect(high.length, childOutput).toBe(10);
  });

  it.each(['sync', 'thread'] as const)(
    'select throws a RangeError that names the fd and suggests poll/epoll (%s)',
    (mode) => {
      const outcome = report.select[mode];
      expect(typeof outcome, childOutput).toBe('object');
      if (typeof outcome !== 'object') return;
      expect(outcome.name, outcome.message).toBe('RangeError');
      const named = /fd (\d+)/.exec(outcome.message);
      expect(named, outcome.message).not.toBeNull();
      expect(Number(named?.[1])).toBeGreaterThanOrEqual(FD_SETSIZE);
      expect(outcome.message).toMatch(/poll/);
      expect(outcome.message).toMatch(/epoll/);
    },
  );

  it.each(['sync', 'thread'] as const)('poll and epoll serve such an fd: an echo round trip (%s)', (mode) => {
    expect(report.poll[mode], childOutput).toBe('ping');
    expect(report.epoll[mode], childOutput).toBe('ping');
  });

  it.each(['sync', 'thread'] as const)('select works on in the same process once fds are low again (%s)', (mode) => {
    expect(report.selectBelowLimit[mode], childOutput).toBe('ping');
  });
});
