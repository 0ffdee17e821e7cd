// LoopOptions.signal stops a loop after the current iteration with signal.reason, leaving the
// map as it is; under loop() an abort ends the native wait at once and no listener outlives the
// loop. callEvery() repeats a call until cancel(), under both loops.
import { getEventListeners } from 'node:events';
import { performance } from 'node:perf_hooks';

import {
  AF_INET,
  Dispatcher,
  ExitNow,
  type ScheduledCall,
  type SocketMap,
  callEvery,
  callLater,
  closeAll,
  loop,
} from 'asyncore';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { BACKENDS, MODES, closeTestMaps, runLoop, testMap } from './helpers.js';

async function failureOf(run: Promise<void>): Promise<unknown> {
  try {
    await run;
  } catch (err) {
    return err;
  }
  return undefined;
}

/** A listener nobody connects to: a map whose loop only ends when something stops it. */
class Idle extends Dispatcher {
  asked = 0;

  override readable(): boolean {
    this.asked++;
    return true;
  }
}

/** Timers a test started: cancelled after it, whatever it left running. */
const timers: ScheduledCall[] = [];

function idleMap(): { map: SocketMap; idle: Idle } {
  // A backstop: a broken loop ends (and the test fails on its assertions) instead of hanging.
  const map = testMap(10);
  const idle = new Idle(null, map);
  idle.createSocket(AF_INET);
  idle.bind(['127.0.0.1', 0]);
  idle.listen(1);
  return { map, idle };
}

afterEach(() => {
  for (const timer of timers.splice(0)) timer.cancel();
  closeTestMaps();
  vi.restoreAllMocks();
});

describe.each(BACKENDS)('signal (%s)', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    it('an already aborted signal stops the loop before the first iteration, with its reason', async () => {
      const { map, idle } = idleMap();
      const reason = new Error('stopped before it began');
      const err = await failureOf(runLoop(mode, { map, backend, signal: AbortSignal.abort(reason) }));
      expect(err).toBe(reason);
      expect(idle.asked).toBe(0);
      expect(map.get(idle.fileno() as number)).toBe(idle);
    });

    it('an abort from a timer inside the loop stops it after that iteration, map untouched', async () => {
      const { map, idle } = idleMap();
      const controller = new AbortController();
      const reason = new Error('enough');
      let iterations = 0;
      let abortedAt = -1;
      timers.push(
        callLater(
          0.02,
          () => {
            abortedAt = iterations;
            controller.abort(reason);
          },
          map,
        ),
      );
      const err = await failureOf(
        runLoop(mode, { map, backend, timeout: 5, signal: controller.signal, trace: () => (iterations += 1) }),
      );
      expect(err).toBe(reason);
      // The iteration whose timer aborted was the last one.
      expect(iterations).toBe(abortedAt + 1);
      expect(map.size).toBe(1);
      expect(map.get(idle.fileno() as number)).toBe(idle);
      if (mode === 'thread') expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    });

    it('the default reason: an AbortError', async () => {
      const { map } = idleMap();
      const controller = new AbortController();
      timers.push(callLater(0.01, () => controller.abort(), map));
      const err = await failureOf(runLoop(mode, { map, backend, timeout: 5, signal: controller.signal }));
      expect(err).toBeInstanceOf(DOMException);
      expect((err as DOMException).name).toBe('AbortError');
    });
  });

  it('thread: an abort from outside ends the native wait at once, not after timeout', async () => {
    const { map, idle } = idleMap();
    const controller = new AbortController();
    const running = loop({ map, backend, timeout: 60, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const started = performance.now();
    controller.abort('from outside');
    const err = await failureOf(running);
    expect(err).toBe('from outside');
    // Bounded far below the 60 s timeout (and the 10 s backstop): the abort woke the thread.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(map.get(idle.fileno() as number)).toBe(idle);
  });

  it('thread: no abort listener outlives its loop, over many loops on one signal', async () => {
    const { map } = idleMap();
    const { signal } = new AbortController();
    for (let i = 0; i < 50; i++) await loop({ map, backend, timeout: 0, count: 1, signal });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });
});

describe('callEvery arguments', () => {
  it.each([0, -1, NaN, Infinity, -Infinity])('a delay of %s throws RangeError', (delay) => {
    expect(() => callEvery(delay, () => undefined, new Map())).toThrow(RangeError);
  });

  it('a delay that is not a number throws RangeError, a fn that is not a function TypeError', () => {
    expect(() => callEvery('1' as unknown as number, () => undefined, new Map())).toThrow(RangeError);
    expect(() => callEvery(1, 'fn' as unknown as () => void, new Map())).toThrow(TypeError);
  });
});

describe.each(MODES)('callEvery under the %s loop', (mode) => {
  it('calls fn every delay until cancel(), each run at least a delay after the last', async () => {
    const { map } = idleMap();
    const times: number[] = [];
    const every = callEvery(
      0.02,
      () => {
        times.push(performance.now());
        if (times.length === 5) {
          every.cancel();
          // Close the map a little later: a cancelled call must not run meanwhile.
          timers.push(callLater(0.1, () => closeAll(map), map));
        }
      },
      map,
    );
    expect(every.cancelled).toBe(false);
    await runLoop(mode, { map, timeout: 5 });
    expect(times).toHaveLength(5);
    expect(every.cancelled).toBe(true);
    for (let i = 1; i < times.length; i++) {
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(19);
    }
  });

  it('stays not cancelled while it repeats; cancel() from outside fn stops it', async () => {
    const { map } = idleMap();
    let runs = 0;
    const every = callEvery(0.01, () => runs++, map);
    // Recorded here, asserted below: an assertion failing in a timer would only be logged.
    let cancelledWhileRepeating: boolean | null = null;
    timers.push(
      callLater(
        0.1,
        () => {
          cancelledWhileRepeating = every.cancelled;
          every.cancel();
          timers.push(callLater(0.1, () => closeAll(map), map));
        },
        map,
      ),
    );
    await runLoop(mode, { map, timeout: 5 });
    expect(cancelledWhileRepeating).toBe(false);
    expect(runs).toBeGreaterThanOrEqual(1);
    const after = runs;
    expect(every.cancelled).toBe(true);
    // Cancelled: the next loop never runs it.
    const { map: again } = idleMap();
    timers.push(callLater(0.05, () => closeAll(again), again));
    await runLoop(mode, { map: again, timeout: 5 });
    expect(runs).toBe(after);
  });

  it('reset() from inside fn, and after cancel(), schedules it again', async () => {
    const { map } = idleMap();
    let runs = 0;
    let runsBeforeReset = -1;
    let cancelledAfterReset: boolean | null = null;
    const resetAfterCancel = (): void => {
      runsBeforeReset = runs;
      every.reset();
      cancelledAfterReset = every.cancelled;
    };
    const every = callEvery(
      0.01,
      () => {
        runs++;
        // A reset from inside fn must not put it in the heap twice.
        every.reset();
        if (runs === 3) {
          every.cancel();
          // Scheduled from here, not at a fixed time: the three runs come first however late
          // the timers run, and the cancelled call must then wait out these 50 ms.
          timers.push(callLater(0.05, resetAfterCancel, map));
        }
        if (runs === 6) {
          every.cancel();
          closeAll(map);
        }
      },
      map,
    );
    await runLoop(mode, { map, timeout: 5 });
    expect(runsBeforeReset).toBe(3);
    expect(cancelledAfterReset).toBe(false);
    // Cancelled at 3, it waited for the reset, then ran 3 more times, once per run of fn.
    expect(runs).toBe(6);
  });

  it('an exception from fn is logged and the calls go on; ExitNow leaves the loop', async () => {
    const { map } = idleMap();
    const errors = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let runs = 0;
    const every = callEvery(
      0.01,
      () => {
        runs++;
        if (runs < 3) throw new Error(`tick ${runs}`);
        throw new ExitNow('done');
      },
      map,
    );
    timers.push(every);
    const err = await failureOf(runLoop(mode, { map, timeout: 5 }));
    expect(err).toBeInstanceOf(ExitNow);
    expect(runs).toBe(3);
    const logged = errors.mock.calls.map(([text]) => String(text)).join('');
    expect(logged).toContain('tick 1');
    expect(logged).toContain('tick 2');
  });

  it('does not keep a loop over an empty map running', async () => {
    const map: SocketMap = new Map();
    const every = callEvery(0.01, () => undefined, map);
    timers.push(every);
    await runLoop(mode, { map, timeout: 5 });
    expect(every.cancelled).toBe(false);
  });
});
