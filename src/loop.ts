// The loop: Python's asyncore.loop / poll / poll2, on any backend.
//
// One iteration, as in Python:
//   1. ask every dispatcher readable() / writable()      (Poller.updateInterest, poller.ts)
//   2. wait for the kernel                                (native Reactor / ThreadLoop)
//   3. dispatch: read, write and exceptional events       (Poller.dispatch -> readwrite.ts)
// plus the callLater timers that are due. Only the masks that changed since the last
// iteration reach the native side, and the backend keeps its interest set between
// iterations, so a quiet fd costs two predicate calls and no system call.
//
// loopSync() runs all of it on the calling thread. loop() runs step 2 on a native thread
// (native/bridge.cc, with its JS side in bridge.ts) and the other steps on the JS thread
// whenever a batch arrives; both go through the same Iterations steps below.
import { performance } from 'node:perf_hooks';

import { chooseBackend, createReactor, creationError, syscallOf } from './backends.js';
import { type NativeThreadLoop, native } from './binding.js';
import { ThreadSide } from './bridge.js';
import { EBADF, ExitNow, SocketError, errnoError } from './errors.js';
import { type InterestLists, Poller } from './poller.js';
import { type MapState, type SocketMap, type SyncState, socketMap, stateOf } from './socketmap.js';

/**
 * A readiness backend for {@link LoopOptions.backend}: `'select'`, `'poll'`, `'epoll'` (Linux), or
 * `'auto'`, the most scalable one compiled in (see {@link availableBackends}).
 */
export type BackendName = 'select' | 'poll' | 'epoll' | 'auto';

/** One record per iteration: what was asked of the kernel, what it answered, and how long it took. */
export interface IterationTrace {
  /** Counts from 0. */
  iteration: number;
  /** The backend that waited. */
  backend: string;
  /** The fds watched for reading during this wait. */
  read: number[];
  /** The fds watched for writing. */
  write: number[];
  /** The fds watched for exceptional conditions (`POLLPRI`). */
  except: number[];
  /** What the kernel answered: each ready fd with its `POLL*` event bits. */
  ready: {
    /** The ready fd. */
    fd: number;
    /** Its `POLL*` bits, e.g. `POLLIN | POLLHUP`. */
    events: number;
  }[];
  /** Milliseconds spent waiting for the kernel. */
  waitMs: number;
  /** Milliseconds spent afterwards in handlers and due timers. */
  dispatchMs: number;
}

/**
 * Options of {@link loopSync} and {@link loop}: Python's `loop(timeout, use_poll, map, count)`, plus
 * `backend` and `trace`.
 */
export interface LoopOptions {
  /** Seconds per wait (float); default 30, as in Python. */
  timeout?: number;
  /** Python compatibility: true means backend 'poll', false 'select'. */
  usePoll?: boolean;
  /** Wins over usePoll. Default: 'select', as Python's use_poll=False. */
  backend?: BackendName;
  /** Default: the global socketMap. */
  map?: SocketMap;
  /** Iterations to run; default: until the map is empty. */
  count?: number;
  /**
   * Called once per iteration with what was asked of the kernel and what it answered; for debugging and
   * teaching (`asyncore-echo --trace` prints it).
   */
  trace?: (it: IterationTrace) => void;
  /**
   * Stops the loop after the current iteration when aborted, leaving the map as it is (as
   * {@link ExitNow} does): {@link loopSync} throws and {@link loop} rejects with `signal.reason`. An
   * already aborted signal stops it before the first iteration. In {@link loop} an abort ends the
   * native thread's wait at once.
   */
  signal?: AbortSignal;
}

/** loop()'s promise, with the means to let Node exit while it runs. */
export interface LoopPromise extends Promise<void> {
  /** Keep Node alive while the loop runs (the default, like a listening net.Server). */
  ref(): LoopPromise;
  /** Let Node exit even though the loop is still running. */
  unref(): LoopPromise;
}

/** Seconds (float) to the milliseconds the native wait takes; Infinity waits forever. */
function timeoutMs(seconds: unknown): number {
  const value = seconds === undefined ? 30 : seconds;
  if (typeof value !== 'number') throw new TypeError(`timeout must be a number of seconds (got ${describe(value)})`);
  if (Number.isNaN(value) || value < 0) {
    throw new RangeError(`timeout must be a number of seconds >= 0 (got ${String(value)})`);
  }
  return value === Infinity ? -1 : Math.ceil(value * 1000);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  return typeof value === 'string' ? JSON.stringify(value) : typeof value;
}

function checkMap(map: unknown): SocketMap {
  if (map === undefined) return socketMap;
  if (!(map instanceof Map)) throw new TypeError(`map must be a Map (got ${describe(map)})`);
  return map as SocketMap;
}

/** LoopOptions once checked, with their defaults filled in. */
interface CheckedOptions {
  map: SocketMap;
  timeoutMs: number;
  backend: string;
  count: number;
  trace: ((it: IterationTrace) => void) | undefined;
  signal: AbortSignal | undefined;
}

function checkOptions(options: unknown): CheckedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`loop options must be an object (got ${describe(options)})`);
  }
  const { timeout, usePoll, backend, map, count, trace, signal } = options as Record<string, unknown>;
  const expect = (name: string, value: unknown, type: string): void => {
    if (value !== undefined && typeof value !== type) {
      throw new TypeError(`${name} must be a ${type} (got ${describe(value)})`);
    }
  };
  expect('count', count, 'number');
  expect('trace', trace, 'function');
  expect('backend', backend, 'string');
  expect('usePoll', usePoll, 'boolean');
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`signal must be an AbortSignal (got ${describe(signal)})`);
  }
  const checkedMap = checkMap(map);
  const ms = timeoutMs(timeout);
  if (typeof count === 'number' && (Number.isNaN(count) || count < 0)) {
    throw new RangeError(`count must be a number >= 0 (got ${String(count)})`);
  }
  return {
    map: checkedMap,
    timeoutMs: ms,
    backend: chooseBackend(backend as string | undefined, usePoll as boolean | undefined),
    count: (count as number | undefined) ?? Infinity,
    trace: trace as ((it: IterationTrace) => void) | undefined,
    signal,
  };
}

// --- Which maps are being polled, and loopSync's reactor between calls --------------------

function claim(map: SocketMap): MapState {
  const state = stateOf(map);
  if (state.polled) {
    throw new Error('this map is already being polled by another loop(), loopSync() or poll() call');
  }
  state.polled = true;
  return state;
}

function release(state: MapState): void {
  state.polled = false;
}

// loopSync/poll/poll2 keep one reactor per map between calls, so a second call finds the
// interest set already in the kernel.
function syncStateFor(state: MapState, backend: string): SyncState {
  const existing = state.sync;
  if (existing !== undefined && existing.poller.backend === backend) return existing;
  dropSyncState(state);
  const reactor = createReactor(backend);
  const sync = { poller: new Poller(backend, reactor), reactor };
  state.sync = sync;
  state.watcher = sync.poller;
  return sync;
}

function dropSyncState(state: MapState): void {
  const sync = state.sync;
  if (sync === undefined) return;
  state.sync = undefined;
  if (state.watcher === sync.poller) state.watcher = undefined;
  sync.reactor.close();
}

// --- One iteration's steps, shared by both loops -------------------------------------------

/** The wait for one iteration: the loop's timeout, or sooner if a timer is due. */
function waitMs(state: MapState, loopTimeoutMs: number): number {
  const untilTimer = state.scheduler?.msUntilNext();
  if (untilTimer === undefined) return loopTimeoutMs;
  const timerMs = Math.ceil(untilTimer);
  return loopTimeoutMs < 0 ? timerMs : Math.min(loopTimeoutMs, timerMs);
}

/**
 * One map being polled: the steps around the wait, the same whether the wait happens on the
 * calling thread (loopSync) or on loop()'s native thread.
 */
class Iterations {
  /** Iterations completed, counting from 0. */
  count = 0;
  readonly #map: SocketMap;
  readonly #state: MapState;
  readonly #poller: Poller;
  readonly #trace: ((it: IterationTrace) => void) | undefined;
  #lists: InterestLists | null = null;

  constructor(map: SocketMap, state: MapState, poller: Poller, trace: ((it: IterationTrace) => void) | undefined) {
    this.#map = map;
    this.#state = state;
    this.#poller = poller;
    this.#trace = trace;
  }

  /** Whether each iteration is traced (and so timed). */
  get traced(): boolean {
    return this.#trace !== undefined;
  }

  /**
   * Step 1: asks the predicates and tells the backend what changed. Returns how long the wait
   * may take: `loopTimeoutMs`, less if a timer is due, 0 if a map key must be reported as not open.
   */
  beforeWait(loopTimeoutMs: number): number {
    const poller = this.#poller;
    poller.updateInterest(this.#map);
    if (this.#trace !== undefined) this.#lists = poller.interestLists();
    return poller.hasInvalid ? 0 : waitMs(this.#state, loopTimeoutMs);
  }

  /**
   * Steps 3 and 4 for the `ready` fds the wait left in the poller: dispatch, then the timers
   * that are due, then the trace. A wake-up with nothing ready (`woken`) is the bridge's
   * business, not an iteration: it is neither traced nor counted. Returns whether it counted.
   */
  afterWait(ready: number, waitedMs: number, woken: boolean): boolean {
    const poller = this.#poller;
    const count = poller.reportInvalid(ready);
    // Clocks are read for a trace only: performance.now() costs more than dispatching an event.
    const started = this.traced ? performance.now() : 0;
    poller.dispatch(count, this.#map);
    this.#state.scheduler?.runDue();
    if (count === 0 && woken) return false;
    if (this.#trace !== undefined && this.#lists !== null) {
      this.#trace(this.#record(this.#lists, count, waitedMs, performance.now() - started));
    }
    this.count++;
    return true;
  }

  #record(lists: InterestLists, count: number, waitedMs: number, dispatchMs: number): IterationTrace {
    const events = this.#poller.ready;
    const ready: IterationTrace['ready'] = [];
    for (let i = 0; i < count; i++) ready.push({ fd: events[2 * i] as number, events: events[2 * i + 1] as number });
    return {
      iteration: this.count,
      backend: this.#poller.backend,
      ...lists,
      ready,
      waitMs: waitedMs,
      dispatchMs,
    };
  }
}

/** One synchronous iteration: the steps around a wait on the calling thread. */
function iterateSync(sync: SyncState, steps: Iterations, loopTimeoutMs: number): void {
  const { poller, reactor } = sync;
  const timeout = steps.beforeWait(loopTimeoutMs);
  // Timed for a trace only (see afterWait).
  const started = steps.traced ? performance.now() : -1;
  const result = reactor.poll(timeout);
  if (result < 0) throw errnoError(result, syscallOf(poller.backend, 'wait'));
  steps.afterWait(result, started < 0 ? 0 : performance.now() - started, false);
}

// --- The public loops ----------------------------------------------------------------------

/**
 * Python's `asyncore.loop()`: polls on the calling thread, which it blocks, until the map is empty or
 * `count` iterations ran. Each iteration asks the dispatchers `readable()`/`writable()`, waits, then
 * dispatches (see {@link readwrite}) and runs the {@link callLater} timers that are due. What a handler
 * throws goes to its `handleError()`, except {@link ExitNow}, which is thrown on from here. A second
 * loop on a map that is already being polled throws. Options are checked before anything runs
 * (`TypeError` for a wrong type, `RangeError` for a negative or NaN `timeout`/`count`, `Error` for an
 * unknown backend); an aborted `signal` stops it after the current iteration with `signal.reason`.
 *
 * ```ts
 * new EchoServer('127.0.0.1', 8080);
 * loopSync({ backend: 'epoll', timeout: 1 });
 * ```
 */
export function loopSync(options: LoopOptions = {}): void {
  const { map, timeoutMs: loopTimeoutMs, backend, count, trace, signal } = checkOptions(options);
  signal?.throwIfAborted();
  const state = claim(map);
  try {
    const sync = syncStateFor(state, backend);
    const steps = new Iterations(map, state, sync.poller, trace);
    while (map.size > 0 && steps.count < count) {
      if (steps.count > 0) signal?.throwIfAborted();
      iterateSync(sync, steps, loopTimeoutMs);
    }
  } finally {
    release(state);
    // An emptied map needs no kernel state: free the backend (epoll's fd) now, not at GC.
    if (map.size === 0) dropSyncState(state);
  }
}

function pollOnce(timeout: unknown, map: unknown, backend: string): void {
  const loopTimeoutMs = timeoutMs(timeout);
  const target = checkMap(map);
  if (target.size === 0) return;
  const state = claim(target);
  try {
    const sync = syncStateFor(state, backend);
    iterateSync(sync, new Iterations(target, state, sync.poller, undefined), loopTimeoutMs);
  } finally {
    release(state);
    if (target.size === 0) dropSyncState(state);
  }
}

/**
 * Python's `asyncore.poll()`: one iteration with the `'select'` backend, waiting at most `timeout`
 * seconds (0: do not wait). Does nothing on an empty map. A `timeout` that is not a number or a `map`
 * that is not a Map throws `TypeError`; a negative or NaN `timeout`, `RangeError`.
 */
export function poll(timeout = 0, map?: SocketMap): void {
  pollOnce(timeout, map, 'select');
}

/** Python's `asyncore.poll2()`: {@link poll} with the `'poll'` backend. */
export function poll2(timeout = 0, map?: SocketMap): void {
  pollOnce(timeout, map, 'poll');
}

/**
 * The loop on a native thread: the wait happens off the JS thread, ready events come back
 * as one batch per iteration, and Node's timers, promises and I/O keep running meanwhile.
 * Handlers still run on the JS thread, with {@link loopSync}'s semantics. Resolves when the map is
 * empty or `count` iterations ran; rejects with what a handler threw past handleError (ExitNow
 * included), and with what {@link loopSync} would throw for bad options or an aborted `signal`.
 * Interest that changes outside a handler (a timer calls `send()`, a new dispatcher) or an abort
 * wakes the thread at once. The loop keeps Node alive while it runs, unless `unref()`'d.
 *
 * ```ts
 * new EchoServer('127.0.0.1', 8080);
 * await loop({ backend: 'auto' });
 * ```
 */
export function loop(options: LoopOptions = {}): LoopPromise {
  let resolve: () => void = () => undefined;
  let reject: (err: unknown) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  }) as LoopPromise;

  // Bad options reject, as everything the loop meets does; nothing has run then.
  let checked: CheckedOptions;
  try {
    checked = checkOptions(options);
    checked.signal?.throwIfAborted();
  } catch (err) {
    reject(err);
    return withRef(promise, null);
  }
  const { map, timeoutMs: loopTimeoutMs, backend, count, trace, signal } = checked;

  if (map.size === 0 || count <= 0) {
    resolve();
    return withRef(promise, null);
  }
  const state = claim(map);
  // The sync reactor of this map would miss what happens while the thread polls.
  dropSyncState(state);

  let thread: NativeThreadLoop;
  try {
    thread = new native.ThreadLoop(backend, onBatch);
  } catch (err) {
    release(state);
    throw creationError(err, backend);
  }
  const side = new ThreadSide(thread);
  const poller = new Poller(backend, side);
  const steps = new Iterations(map, state, poller, trace);
  state.watcher = poller;
  // An abort ends the native thread's wait at once; the batch that follows stops the loop.
  const onAbort = (): void => thread.wake();
  signal?.addEventListener('abort', onAbort, { once: true });
  let done = false;
  // When the current iteration's wait times out, once a wake-up with nothing ready has
  // interrupted it (null while it has not): the wait resumes where it was, not afresh, so
  // frequent wake-ups cannot postpone the timeout forever. An iteration that is not woken
  // reads no clock: performance.now() costs more than dispatching an event.
  let waitDeadline: number | null = null;

  function startWait(): void {
    let remaining = loopTimeoutMs;
    if (waitDeadline !== null) {
      remaining = waitDeadline === Infinity ? -1 : Math.max(0, Math.ceil(waitDeadline - performance.now()));
    }
    side.resume(steps.beforeWait(remaining));
  }

  function finish(err?: unknown): void {
    if (done) return;
    done = true;
    signal?.removeEventListener('abort', onAbort);
    thread.stop();
    if (state.watcher === poller) state.watcher = undefined;
    release(state);
    if (err === undefined) resolve();
    else reject(err);
  }

  function onBatch(result: number, waited: number, woken: boolean): void {
    if (done) return;
    try {
      const channelLeft = side.takeTurn();
      // A dispatcher closed its fd while select()/poll() watched it: not an error.
      if (result < 0 && !(result === -EBADF && channelLeft)) throw errnoError(result, syscallOf(backend, 'wait'));
      // The ready fds are in poller.ready already.
      if (steps.afterWait(Math.max(result, 0), waited, woken)) waitDeadline = null;
      // Woken with nothing ready: the wait began `waited` ms ago (the native side's count).
      else waitDeadline ??= loopTimeoutMs < 0 ? Infinity : performance.now() - waited + loopTimeoutMs;
      if (signal?.aborted === true) finish(signal.reason);
      else if (map.size === 0 || steps.count >= count) finish();
      else startWait();
    } catch (err) {
      finish(err);
    }
  }

  try {
    startWait();
  } catch (err) {
    finish(err);
  }
  return withRef(promise, thread);
}

function withRef(promise: LoopPromise, thread: NativeThreadLoop | null): LoopPromise {
  promise.ref = () => {
    thread?.ref();
    return promise;
  };
  promise.unref = () => {
    thread?.unref();
    return promise;
  };
  return promise;
}

/**
 * Python's `close_all()`: closes every dispatcher of the map (default: the global {@link socketMap}) and
 * empties it. An error from a `close()` propagates unless `ignoreAll`; `EBADF` is always ignored and
 * {@link ExitNow} always propagates.
 */
export function closeAll(map: SocketMap = socketMap, ignoreAll = false): void {
  for (const obj of [...map.values()]) {
    try {
      obj.close();
    } catch (err) {
      if (err instanceof ExitNow) throw err;
      if (err instanceof SocketError && err.code === 'EBADF') continue;
      if (!ignoreAll) throw err;
    }
  }
  map.clear();
}
