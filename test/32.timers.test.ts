// callLater(): timers that run inside the loop polling a map, under loopSync() and loop()
// alike. They fire after their delay and in deadline order, can be cancelled and reset, bound
// the loop's wait, log their exceptions (ExitNow excepted), and never keep a loop over an
// empty map running. Under loop() a timer scheduled from outside the loop must wake the
// polling thread, which otherwise waits out its full timeout.
import { performance } from 'node:perf_hooks';

import { AF_INET, Dispatcher, ExitNow, type ScheduledCall, type SocketMap, callLater, closeAll, loop } from 'asyncore';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { MODES, runLoop } from './helpers.js';

/**
 * A map whose loop only ends when a timer closes it: it holds a listener nobody connects to.
 * A 5 s backstop timer closes it in any case, so a broken test cannot block loopSync() forever
 * (its tests would then fail on what they expect, not hang).
 */
interface Stage {
  map: SocketMap;
  backstop: ScheduledCall;
}

const stages: Stage[] = [];

function stage(): Stage {
  const map: SocketMap = new Map();
  const idle = new Dispatcher(null, map);
  idle.createSocket(AF_INET);
  idle.bind(['127.0.0.1', 0]);
  idle.listen(1);
  const backstop = callLater(5, () => closeAll(map), map);
  const created = { map, backstop };
  stages.push(created);
  return created;
}

afterEach(() => {
  for (const { map, backstop } of stages.splice(0)) {
    backstop.cancel();
    closeAll(map, true);
  }
  vi.restoreAllMocks();
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe.each(MODES)('callLater under the %s loop', (mode) => {
  it('runs each call once its delay has passed, in deadline order', async () => {
    const { map, backstop } = stage();
    const fired: { name: string; afterMs: number }[] = [];
    const start = performance.now();
    const record = (name: string) => () => fired.push({ name, afterMs: performance.now() - start });
    callLater(
      0.06,
      () => {
        record('c')();
        closeAll(map);
      },
      map,
    );
    callLater(0.02, record('a'), map);
    callLater(0.04, record('b'), map);
    callLater(0.04, record('b2'), map);
    await runLoop(mode, { map, timeout: 30 });

    expect(fired.map((f) => f.name)).toEqual(['a', 'b', 'b2', 'c']);
    const delays: Record<string, number> = { a: 20, b: 40, b2: 40, c: 60 };
    for (const { name, afterMs } of fired) expect(afterMs).toBeGreaterThanOrEqual(delays[name] ?? Infinity);
    expect(backstop.cancelled).toBe(false);
  });

  it('never runs a cancelled call, whether cancelled before the loop or from another timer', async () => {
    const { map } = stage();
    const ran: string[] = [];
    const early = callLater(0.02, () => ran.push('early'), map);
    expect(early.cancelled).toBe(false);
    early.cancel();
    early.cancel();
    expect(early.cancelled).toBe(true);
    const late = callLater(0.05, () => ran.push('late'), map);
    callLater(0.01, () => late.cancel(), map);
    callLater(
      0.08,
      () => {
        ran.push('end');
        closeAll(map);
      },
      map,
    );
    await runLoop(mode, { map, timeout: 30 });
    expect(ran).toEqual(['end']);
    expect(late.cancelled).toBe(true);
  });

  it('reset() starts the delay again, and revives a cancelled call', async () => {
    const { map } = stage();
    const start = performance.now();
    let firedAfterMs = -1;
    let runs = 0;
    const postponed = callLater(
      0.1,
      () => {
        runs++;
        firedAfterMs = performance.now() - start;
        // The call itself ends the test, however late the timers run; the 50 ms after it leave
        // room for a second run, which must not come.
        callLater(0.05, () => closeAll(map), map);
      },
      map,
    );
    callLater(0.06, () => postponed.reset(), map);
    let revivedRuns = 0;
    const revived = callLater(0.02, () => revivedRuns++, map);
    revived.cancel();
    revived.reset();
    expect(revived.cancelled).toBe(false);
    await runLoop(mode, { map, timeout: 30 });

    expect(runs).toBe(1);
    // Reset at 60 ms with a 100 ms delay: not before 160 ms.
    expect(firedAfterMs).toBeGreaterThanOrEqual(160);
    expect(revivedRuns).toBe(1);
  });

  it('bounds the wait by the nearest deadline (timeout 30 s, timer 50 ms)', async () => {
    const { map } = stage();
    const start = performance.now();
    callLater(0.05, () => closeAll(map), map);
    await runLoop(mode, { map, timeout: 30 });
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(50);
    // A safety net: without the bound the first wait would last until the 5 s backstop.
    expect(elapsed).toBeLessThan(1000);
  });

  it('lets fn schedule the next call, whose deadline bounds the following wait', async () => {
    const { map } = stage();
    const start = performance.now();
    const ticks: number[] = [];
    // A periodic task in the pyftpdlib style: each run schedules the next one.
    const tick = (): void => {
      ticks.push(performance.now() - start);
      if (ticks.length < 4) callLater(0.02, tick, map);
      else closeAll(map);
    };
    callLater(0.02, tick, map);
    await runLoop(mode, { map, timeout: 30 });
    expect(ticks).toHaveLength(4);
    ticks.forEach((afterMs, i) => expect(afterMs).toBeGreaterThanOrEqual(20 * (i + 1)));
    // Safety net: a wait not bounded by the new deadline would last until the 5 s backstop.
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it('logs an exception from fn to stderr and goes on', async () => {
    const { map } = stage();
    const logged: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
    const ran: string[] = [];
    callLater(
      0.01,
      () => {
        throw new Error('kaboom');
      },
      map,
    );
    callLater(
      0.03,
      () => {
        ran.push('after');
        closeAll(map);
      },
      map,
    );
    await runLoop(mode, { map, timeout: 30 });
    vi.restoreAllMocks();

    expect(ran).toEqual(['after']);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^error: exception in callLater function \(Error:kaboom \[.*\]\)\n$/);
  });

  it('lets ExitNow from fn leave the loop, with the map released', async () => {
    const { map } = stage();
    const ran: string[] = [];
    callLater(
      0.01,
      () => {
        throw new ExitNow('from a timer');
      },
      map,
    );
    callLater(0.03, () => ran.push('next'), map);
    await expect(runLoop(mode, { map, timeout: 30 })).rejects.toThrow(ExitNow);
    expect(ran).toEqual([]);
    // The loop let go of the map: another loop may poll it, and the next timer still runs.
    callLater(0.06, () => closeAll(map), map);
    await runLoop(mode, { map, timeout: 30 });
    expect(ran).toEqual(['next']);
  });

  it('does not keep a loop running for pending timers once the map is empty', async () => {
    const { map } = stage();
    let longRan = false;
    const long = callLater(10, () => (longRan = true), map);
    callLater(0.02, () => closeAll(map), map);
    const start = performance.now();
    await runLoop(mode, { map, timeout: 30 });
    expect(performance.now() - start).toBeLessThan(5000);
    expect(longRan).toBe(false);
    expect(long.cancelled).toBe(false);
    long.cancel();

    // A loop over a map that is empty from the start returns without running a due timer.
    const empty: SocketMap = new Map();
    let dueRan = false;
    const due = callLater(0, () => (dueRan = true), empty);
    await sleep(2);
    await runLoop(mode, { map: empty, timeout: 30 });
    expect(dueRan).toBe(false);
    due.cancel();
  });

  it('does not fire timers of another map', async () => {
    const other = stage();
    const { map } = stage();
    const ran: string[] = [];
    callLater(0.01, () => ran.push('other map'), other.map);
    callLater(
      0.06,
      () => {
        ran.push('this map');
        closeAll(map);
      },
      map,
    );
    await runLoop(mode, { map, timeout: 30 });
    expect(ran).toEqual(['this map']);

    // The other map's timer was waiting for its own loop.
    callLater(0.01, () => closeAll(other.map), other.map);
    await runLoop(mode, { map: other.map, timeout: 30 });
    expect(ran).toEqual(['this map', 'other map']);
  });
});

describe('callLater', () => {
  it('throws RangeError for a negative, NaN or infinite delay', () => {
    const map: SocketMap = new Map();
    for (const delay of [-1, -0.001, Number.NaN, Infinity, -Infinity]) {
      expect(() => callLater(delay, () => undefined, map)).toThrow(RangeError);
    }
    callLater(0, () => undefined, map).cancel();
  });

  it('wakes the waiting loop() thread when scheduled from a Node timer (timeout 30 s)', async () => {
    const { map } = stage();
    let scheduledAt = 0;
    let firedAfterMs = -1;
    const served = loop({ map, timeout: 30 });
    // The thread is now waiting with no deadline nearer than the 5 s backstop.
    await sleep(30);
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        scheduledAt = performance.now();
        callLater(
          0.05,
          () => {
            firedAfterMs = performance.now() - scheduledAt;
            closeAll(map);
          },
          map,
        );
        resolve();
      }, 0),
    );
    await served;
    expect(firedAfterMs).toBeGreaterThanOrEqual(50);
    // Safety net: a thread left waiting would only notice at the 5 s backstop.
    expect(firedAfterMs).toBeLessThan(1000);
  });
});
