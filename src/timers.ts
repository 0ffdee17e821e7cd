// callLater: timers that run inside the loop polling a map, as pyftpdlib's ioloop has them.
// A binary heap ordered by deadline; cancelled entries are dropped lazily when they reach
// the top, and the heap is rebuilt when more than half of a large heap is cancelled.
import { performance } from 'node:perf_hooks';

import { ExitNow, compactTraceback } from './errors.js';
import { type MapState, type SocketMap, existingStateOf, socketMap, stateOf } from './socketmap.js';

/**
 * A function scheduled by {@link callLater} (pyftpdlib's `CallLater`) or {@link callEvery}
 * (`CallEvery`) in the loop that polls a map.
 */
export class ScheduledCall {
  #deadline: number;
  #cancelled = false;
  readonly #delayMs: number;
  readonly #fn: () => void;
  readonly #scheduler: Scheduler;
  readonly #repeats: boolean;
  /** @internal whether the scheduler's heap holds it now */
  queued = false;

  /** @internal created by callLater() and callEvery() */
  constructor(delayMs: number, fn: () => void, scheduler: Scheduler, repeats = false) {
    this.#delayMs = delayMs;
    this.#fn = fn;
    this.#scheduler = scheduler;
    this.#repeats = repeats;
    this.#deadline = performance.now() + delayMs;
  }

  /**
   * True once cancelled, and once a {@link callLater} call ran (a {@link callEvery} call stays false
   * until cancelled); {@link ScheduledCall.reset} schedules it again.
   */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** @internal monotonic milliseconds */
  get deadline(): number {
    return this.#deadline;
  }

  /** Cancels the call; it will not run. Cancelling twice does nothing. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#scheduler.cancelled(this);
  }

  /** Starts the delay again from now (a cancelled call is scheduled anew). */
  reset(): void {
    this.#cancelled = false;
    this.#deadline = performance.now() + this.#delayMs;
    this.#scheduler.reschedule(this);
  }

  /**
   * @internal Runs fn; returns whether it is due again (a repeating call not cancelled meanwhile),
   * with its next deadline a delay from now.
   */
  run(): boolean {
    if (!this.#repeats) {
      this.#cancelled = true;
      this.#fn();
      return false;
    }
    try {
      this.#fn();
    } finally {
      // reset() from fn already scheduled it again.
      if (!this.queued) this.#deadline = performance.now() + this.#delayMs;
    }
    return !this.#cancelled && !this.queued;
  }

  /** @internal whether it repeats (callEvery) */
  get repeats(): boolean {
    return this.#repeats;
  }
}

export class Scheduler {
  #heap: ScheduledCall[] = [];
  #cancelledCount = 0;
  readonly #state: MapState;

  constructor(state: MapState) {
    this.#state = state;
  }

  add(call: ScheduledCall): void {
    this.#push(call);
    // A loop waiting on its native thread must wake if this deadline comes first.
    this.#state.watcher?.interestChanged();
  }

  cancelled(call: ScheduledCall): void {
    // A call cancelled while it runs is out of the heap: nothing to count.
    if (!call.queued) return;
    this.#cancelledCount++;
    if (this.#heap.length > 512 && this.#cancelledCount * 2 > this.#heap.length) this.#rebuild();
  }

  reschedule(call: ScheduledCall): void {
    // The old heap position is stale: rebuild without it and push it again.
    if (call.queued) {
      const index = this.#heap.indexOf(call);
      this.#heap.splice(index, 1);
      call.queued = false;
      this.#rebuild();
    }
    this.add(call);
  }

  /** Milliseconds until the next live deadline (0 if overdue), or undefined if none. */
  msUntilNext(now = performance.now()): number | undefined {
    this.#dropCancelledTop();
    const top = this.#heap[0];
    return top === undefined ? undefined : Math.max(0, top.deadline - now);
  }

  /** Runs every call that is due; an exception is logged, except ExitNow, which propagates. */
  runDue(now = performance.now()): void {
    for (;;) {
      this.#dropCancelledTop();
      const top = this.#heap[0];
      if (top === undefined || top.deadline > now) return;
      this.#pop();
      try {
        if (top.run()) this.#push(top);
      } catch (err) {
        // A repeating call goes on after an exception, until cancel().
        if (top.repeats && !top.cancelled && !top.queued) this.#push(top);
        if (err instanceof ExitNow) throw err;
        const { info } = compactTraceback(err);
        const text = err instanceof Error ? `${err.name}:${err.message}` : String(err);
        process.stderr.write(`error: exception in callLater function (${text} ${info})\n`);
      }
    }
  }

  #dropCancelledTop(): void {
    while (this.#heap[0]?.cancelled === true) {
      this.#pop();
      this.#cancelledCount--;
    }
  }

  #rebuild(): void {
    const live = this.#heap.filter((call) => !call.cancelled);
    for (const call of this.#heap) call.queued = false;
    this.#heap = [];
    this.#cancelledCount = 0;
    for (const call of live) this.#push(call);
  }

  #push(call: ScheduledCall): void {
    const heap = this.#heap;
    call.queued = true;
    heap.push(call);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as ScheduledCall;
      if (p.deadline <= call.deadline) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = call;
  }

  #pop(): void {
    const heap = this.#heap;
    if (heap[0] !== undefined) heap[0].queued = false;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const l = heap[left] as ScheduledCall;
      const r = heap[right];
      const child = r !== undefined && r.deadline < l.deadline ? right : left;
      const c = heap[child] as ScheduledCall;
      if (c.deadline >= last.deadline) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
  }
}

export function schedulerOf(map: SocketMap): Scheduler | undefined {
  return existingStateOf(map)?.scheduler;
}

/**
 * Runs fn after `seconds` inside the loop that polls `map` (loopSync and loop() alike).
 * The nearest deadline bounds the loop's wait. An exception from fn is logged and the loop
 * goes on, except ExitNow, which leaves the loop.
 */
export function callLater(seconds: number, fn: () => void, map: SocketMap = socketMap): ScheduledCall {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw new RangeError(`callLater delay must be a finite number of seconds >= 0 (got ${String(seconds)})`);
  }
  if (typeof fn !== 'function') throw new TypeError('callLater needs a function');
  const scheduler = schedulerFor(map);
  const call = new ScheduledCall(seconds * 1000, fn, scheduler);
  scheduler.add(call);
  return call;
}

function schedulerFor(map: SocketMap): Scheduler {
  const state = stateOf(map);
  state.scheduler ??= new Scheduler(state);
  return state.scheduler;
}

/**
 * pyftpdlib's `call_every`: runs fn every `seconds` inside the loop that polls `map` (default: the
 * global map), under loopSync and loop() alike, until {@link ScheduledCall.cancel}. The next run is
 * `seconds` after the previous one ended, so a slow fn never piles up runs. An exception from fn is
 * logged and the calls go on, except {@link ExitNow}, which leaves the loop (the call stays
 * scheduled). A delay that is not a positive finite number throws `RangeError`.
 *
 * ```ts
 * const tick = callEvery(1, () => console.log('still here'));
 * loopSync({ timeout: 5 });
 * tick.cancel();
 * ```
 */
export function callEvery(seconds: number, fn: () => void, map: SocketMap = socketMap): ScheduledCall {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new RangeError(`callEvery delay must be a finite number of seconds > 0 (got ${String(seconds)})`);
  }
  if (typeof fn !== 'function') throw new TypeError('callEvery needs a function');
  const scheduler = schedulerFor(map);
  const call = new ScheduledCall(seconds * 1000, fn, scheduler, true);
  scheduler.add(call);
  return call;
}
