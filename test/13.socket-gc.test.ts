// A Socket (or FileWrapper) dropped without close() has its fd closed when it is
// garbage-collected, with one ResourceWarning naming the fd, as Python does; and garbage
// collection never closes an fd that is not the dropped wrapper's any more (closed and
// reused, adopted by Socket.fromFd) or that a live dispatcher holds. Each case runs in a
// child under --expose-gc (test/fixtures/socket-gc.mjs, loading the built package).
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { DIST, ROOT, run } from './helpers.js';

const INDEX = join(DIST, 'index.js');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'socket-gc.mjs');

/** Runs one scenario and returns the JSON line it printed. */
async function scenario(name: string): Promise<Record<string, unknown>> {
  const result = await run(process.execPath, ['--expose-gc', '--no-warnings', FIXTURE, INDEX, name], {
    timeoutMs: 30_000,
  });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('garbage collection of open sockets', () => {
  it('closes every fd of 2,000 dropped sockets, accepted, connected and socketpair ones and FileWrappers, one warning each', async () => {
    const seen = await scenario('drop');
    expect(seen['dropped']).toBe(2221);
    expect(seen['openWhenDropped']).toBe(2221);
    expect(seen['stillOpen']).toBe(0);
    // Back to the start (or below it, should Node have closed an fd of its own meanwhile).
    expect(seen['fdCountChange']).toBeLessThanOrEqual(0);
    expect(seen['warnings']).toBe(2221);
    // Each warning names its fd, and together they name every dropped fd once.
    expect(seen['namedAll']).toBe(true);
    expect(seen['sample']).toMatch(/^unclosed <(Socket|FileWrapper) fd=(\d+)[^>]*>: fd \2 was closed/);
  });

  it('never closes an fd number its wrapper gave up: closed then reused, or adopted by Socket.fromFd', async () => {
    const seen = await scenario('reuse');
    // One assertion per fact, so a failure names the one that did not hold.
    expect(seen['collected'], 'both dropped wrappers were collected').toBe(true);
    expect(seen['reused'], "the second socket got the first one's fd number").toBe(true);
    expect(seen['secondKept'], 'the socket now holding the reused number is open').toBe(true);
    expect(seen['adoptedKept'], 'the adopted fd is open').toBe(true);
    // Only the control socket dropped beside them was closed by the collector.
    expect(seen['warnings']).toEqual(['control']);
  });

  it('leaves the sockets of live dispatchers open, and close() leaves nothing to warn about', async () => {
    const seen = await scenario('dispatcher');
    expect(seen['kept']).toBe(true);
    // Only the control socket dropped beside them was closed by the collector.
    expect(seen['warningsWhileLive']).toEqual([seen['control']]);
    expect(seen['closedByClose']).toBe(true);
    expect(seen['warningsAfterClose']).toEqual([seen['control']]);
  });
});
