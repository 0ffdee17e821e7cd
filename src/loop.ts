// The loop: Python's asyncore.loop / poll / poll2 / readwrite, on any backend.
//
// One iteration, as in Python:
//   1. ask every dispatcher readable() / writable()      (Poller.updateInterest)
//   2. wait for the kernel                                (native Reactor / ThreadLoop)
//   3. dispatch: read, write and exceptional events       (Poller.dispatch -> readwrite)
// plus the callLater timers that are due. Only the masks that changed since the last
// iteration reach the native side, and the backend keeps its interest set between
// iterations, so a quiet fd costs two predicate calls and no system call.
//
// loopSync() runs all of it on the calling thread. loop() runs step 2 on a native thread
// (native/bridge.cc) and steps 1 and 3 on the JS thread whenever a batch arrives.
import { performance } from 'node:perf_hooks';

import { type NativeReactor, type NativeThreadLoop, native } from './binding.js';
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI } from './constants.js';
import { type Dispatcher, type SocketMap, hasBuiltInPredicates, socketMap } from './dispatcher.js';
import { ExitNow, SocketError, errnoError, isDisconnect, isWouldBlock } from './errors.js';
import { schedulerOf } from './timers.js';
import { type MapWatcher, unwatch, watch } from './watchers.js';

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

const ERANGE = 34;
const EBADF = 9;

/** The backends compiled in on this platform, most scalable first ('auto' excluded). */
export function availableBackends(): string[] {
  return native.availableBackends();
}

function chooseBackend(backend: string | undefined, usePoll: boolean | undefined): string {
  const requested = backend ?? (usePoll === true ? 'poll' : 'select');
  const available = availableBackends();
  if (requested === 'auto') return available[0] ?? 'select';
  if (!available.includes(requested)) {
    throw new Error(`backend ${JSON.stringify(requested)} is not available here; available: ${available.join(', ')}`);
  }
  return requested;
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

// --- Python's per-event helpers ----------------------------------------------------------

/**
 * Where an exception from a handler goes: ExitNow leaves the loop, EAGAIN is a spurious
 * wake-up, a disconnect closes the channel, anything else goes to handleError.
 */
function handlerFailed(obj: Dispatcher, err: unknown): void {
  if (err instanceof ExitNow) throw err;
  if (isWouldBlock(err)) return;
  if (isDisconnect(err)) obj.handleClose();
  else obj.handleError(err);
}

/**
 * Python's `asyncore.read()`: calls `obj.handleReadEvent()` and routes what it throws as the loop does:
 * {@link ExitNow} propagates, `EAGAIN` is ignored, a disconnect error calls `handleClose()`, anything
 * else goes to `handleError()`.
 */
export function read(obj: Dispatcher): void {
  try {
    obj.handleReadEvent();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/** Python's `asyncore.write()`: {@link read} for `obj.handleWriteEvent()`. */
export function write(obj: Dispatcher): void {
  try {
    obj.handleWriteEvent();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

function closedFd(obj: Dispatcher): void {
  handlerFailed(obj, errnoError(-EBADF, 'select', `fd ${String(obj.fileno())}`));
}

function exception(obj: Dispatcher): void {
  try {
    obj.handleExptEvent();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/**
 * Python's `asyncore.readwrite()`: dispatches one `poll()`-style result, in Python's order:
 * `POLLIN` to `handleReadEvent()`, `POLLOUT` to `handleWriteEvent()`, `POLLPRI` to `handleExptEvent()`,
 * then `POLLHUP`/`POLLERR`/`POLLNVAL` to `handleClose()`. Errors are routed as in {@link read}.
 *
 * One deliberate difference from Python: a hang-up loses no data. When `POLLHUP` or `POLLERR` comes
 * with `POLLIN` and the read handler consumed some of the bytes queued on the fd but not all, there is
 * no `handleClose()` yet: the fd is reported again in the next iteration, and the dispatcher keeps
 * reading until its read side reaches the end (an empty `recv()` closes it by the usual path) or every
 * queued byte was read. A read handler that consumed nothing, or one that closed the dispatcher
 * itself, ends it at once, as in Python (then without a second `handleClose()`).
 */
export function readwrite(obj: Dispatcher, flags: number): void {
  try {
    let hangUp = (flags & (POLLHUP | POLLERR | POLLNVAL)) !== 0;
    if (flags & POLLIN) {
      if (hangUp) hangUp = readOnHangUp(obj);
      else obj.handleReadEvent();
    }
    if (flags & POLLOUT) obj.handleWriteEvent();
    if (flags & POLLPRI) obj.handleExptEvent();
    if (hangUp) obj.handleClose();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/**
 * `handleReadEvent()` for a hang-up that came with readable data. Returns whether the hang-up
 * should close the dispatcher now: not while the handler is draining bytes that are still
 * queued (the level-triggered backend reports the fd again), and not when the handler already
 * closed it.
 */
function readOnHangUp(obj: Dispatcher): boolean {
  const fd = obj.fileno();
  if (fd === null) {
    obj.handleReadEvent();
    return true;
  }
  const before = native.bytesReadable(fd);
  obj.handleReadEvent();
  // Closed by its own handler (EOF or an error): that was its close.
  if (obj.fileno() !== fd) return obj.fileno() !== null;
  if (before <= 0) return true;
  const after = native.bytesReadable(fd);
  return !(after > 0 && after < before);
}

// --- The poller: one map's interest, kept in a backend ------------------------------------

/** What the poller needs of a native reactor; NativeReactor and NativeThreadLoop both fit. */
interface InterestSink {
  setInterest(fd: number, mask: number): number;
}

interface Watch {
  owner: Dispatcher;
  mask: number;
}

/**
 * One map's interest, kept in a backend between iterations.
 *
 * Which dispatchers are asked readable()/writable() before a wait:
 * - those with predicates of their own (overridden in a subclass): every iteration, as in
 *   Python;
 * - those with the package's built-in predicates (see hasBuiltInPredicates): only when
 *   their answer may have changed, i.e. when they are new, handled an event in the last
 *   iteration, or reported a change through interestChanged(). An idle one costs nothing:
 *   no JS call, no system call, no scan.
 * Only masks that changed reach the backend.
 */
class Poller implements MapWatcher {
  readonly backend: string;
  /** select's semantics (three passes: reads, writes, exceptions) or poll's (readwrite per fd). */
  readonly #selectStyle: boolean;
  readonly #sink: InterestSink;
  readonly #watches = new Map<number, Watch>();
  /** Dispatchers with predicates of their own: asked every iteration. */
  readonly #askedEveryIteration = new Set<Dispatcher>();
  /** Dispatchers with built-in predicates whose answers may have changed. */
  readonly #changed = new Set<Dispatcher>();
  /** Channels that left the map while the native thread was waiting (loop() only). */
  readonly #leftOutsideTurn: { fd: number; dispatcher: Dispatcher }[] = [];
  #scanEverything = true;
  #watchedCount = 0;
  /** Map keys the kernel refused as not open (EBADF) this iteration: reported after the wait. */
  readonly #invalid: number[] = [];
  /**
   * Hung-up fds with unread input whose dispatcher is not reading now (back-pressure): kept out
   * of the kernel until readable() says yes again, since poll() reports a hang-up whatever the
   * mask, and a dispatcher that ignores it would spin.
   */
  readonly #parked = new Set<number>();
  /** [fd, events] pairs of the last wait. */
  ready = new Int32Array(256);
  #owners: (Dispatcher | undefined)[] = [];

  /** Whether the sink may be touched now (always for loopSync; in the JS turn for loop()). */
  inTurn = true;
  /** Called when interest changes outside the turn (loop() wakes its thread). */
  onChangeOutsideTurn: (() => void) | null = null;

  constructor(backend: string, sink: InterestSink) {
    this.backend = backend;
    this.#selectStyle = backend === 'select';
    this.#sink = sink;
  }

  /** Step 1: ask the dispatchers that may answer differently, and tell the kernel what changed. */
  updateInterest(map: SocketMap): void {
    for (const { fd, dispatcher } of this.#leftOutsideTurn.splice(0)) this.#unwatch(fd, dispatcher);
    this.#invalid.length = 0;
    if (this.#scanEverything) {
      this.#scanAll(map);
    } else {
      for (const obj of this.#askedEveryIteration) this.#refreshChannel(obj, map);
      for (const obj of this.#changed) {
        if (!this.#askedEveryIteration.has(obj)) this.#refreshChannel(obj, map);
      }
      // A map changed behind our back (map.set / map.delete instead of addChannel and
      // delChannel) shows up as a size mismatch: then everything is asked once, as Python
      // always does. New channels reported themselves above, so an accept costs O(1).
      if (map.size !== this.#watches.size) this.#scanAll(map);
    }
    this.#changed.clear();
    // Room for every watched fd, so one wait reports all of them.
    const room = 2 * (this.#watchedCount + this.#invalid.length);
    if (this.ready.length < room) this.ready = new Int32Array(Math.max(room, 2 * this.ready.length));
  }

  /** Whether a map key was refused as not open: the wait must not block before it is reported. */
  get hasInvalid(): boolean {
    return this.#invalid.length > 0;
  }

  /**
   * Appends the refused map keys to the `count` ready fds of the last wait, as poll() reports a
   * closed fd (`POLLNVAL`); returns the new count.
   */
  reportInvalid(count: number): number {
    let total = count;
    for (const fd of this.#invalid) {
      this.ready[2 * total] = fd;
      this.ready[2 * total + 1] = POLLNVAL;
      total++;
    }
    this.#invalid.length = 0;
    return total;
  }

  #scanAll(map: SocketMap): void {
    this.#scanEverything = false;
    this.#askedEveryIteration.clear();
    for (const [fd, obj] of map) this.#refresh(fd, obj);
    this.#sweep(map);
  }

  #refreshChannel(obj: Dispatcher, map: SocketMap): void {
    const fd = obj.fileno();
    if (fd !== null && map.get(fd) === obj) this.#refresh(fd, obj);
  }

  /** Asks one dispatcher (Python's semantics) and applies a changed mask. */
  #refresh(fd: number, obj: Dispatcher): void {
    const r = obj.readable() && !obj.acceptPaused;
    const w = obj.writable();
    // Listening sockets are never polled for writing.
    const out = w && !obj.accepting;
    let mask = this.#selectStyle
      ? (r ? POLLIN : 0) | (out ? POLLOUT : 0) | (r || w ? POLLPRI : 0)
      : (r ? POLLIN | POLLPRI : 0) | (out ? POLLOUT : 0);
    if (!hasBuiltInPredicates(obj)) this.#askedEveryIteration.add(obj);
    const watched = this.#watches.get(fd);
    if (this.#parked.size > 0 && this.#parked.has(fd)) {
      // A parked fd returns to the kernel once its dispatcher wants to read or write again.
      if ((mask & (POLLIN | POLLOUT)) === 0 && watched?.owner === obj) mask = 0;
      else this.#parked.delete(fd);
    }
    if (watched === undefined) {
      this.#watches.set(fd, { owner: obj, mask: this.#apply(fd, 0, mask) });
    } else if (watched.owner !== obj) {
      // Another dispatcher took this fd number: start the kernel's view afresh.
      this.#askedEveryIteration.delete(watched.owner);
      this.#apply(fd, watched.mask, 0);
      watched.mask = 0;
      watched.owner = obj;
      watched.mask = this.#apply(fd, 0, mask);
    } else if (watched.mask !== mask) {
      watched.mask = this.#apply(fd, watched.mask, mask);
    }
  }

  /** Drops watches whose dispatcher left the map without telling us. */
  #sweep(map: SocketMap): void {
    if (this.#watches.size === map.size) return;
    for (const [fd, watched] of this.#watches) {
      if (map.get(fd) !== watched.owner) {
        this.#apply(fd, watched.mask, 0);
        this.#watches.delete(fd);
        this.#parked.delete(fd);
        this.#askedEveryIteration.delete(watched.owner);
      }
    }
  }

  /** Tells the kernel; returns the mask it holds afterwards (0 for an fd that is not open). */
  #apply(fd: number, oldMask: number, mask: number): number {
    if (oldMask === mask) return mask;
    const status = this.#sink.setInterest(fd, mask);
    if (status === -EBADF && mask !== 0) {
      // Not an open fd (closed, or a bogus map key): reported to its dispatcher after the
      // wait, as poll() reports POLLNVAL, and asked again next iteration.
      if (oldMask !== 0) this.#watchedCount--;
      this.#invalid.push(fd);
      return 0;
    }
    if (status < 0) {
      if (status === -ERANGE) {
        throw new RangeError(
          `fd ${fd} is beyond what ${this.backend}() can watch (FD_SETSIZE is ${native.constants.FD_SETSIZE}); ` +
            `use backend 'poll' or 'epoll'`,
        );
      }
      throw errnoError(status, this.backend === 'epoll' ? 'epoll_ctl' : this.backend, `fd ${fd}`);
    }
    if (oldMask === 0) this.#watchedCount++;
    else if (mask === 0) this.#watchedCount--;
    return mask;
  }

  /** Step 3: dispatch the `count` ready fds in this.ready. */
  dispatch(count: number, map: SocketMap): void {
    const ready = this.ready;
    // Look every dispatcher up before any handler runs, and skip one that is no longer the
    // owner of its fd when its turn comes: a handler may close another channel, and a new
    // one may get the same fd number within this batch (bpo-30931).
    const owners = this.#owners;
    for (let i = 0; i < count; i++) {
      const obj = map.get(ready[2 * i] as number);
      owners[i] = obj;
      // Its handlers may change what its built-in predicates answer: ask it next time.
      if (obj !== undefined) this.#changed.add(obj);
    }
    if (this.#selectStyle) {
      this.#pass(count, map, POLLIN, read);
      this.#pass(count, map, POLLOUT, write);
      this.#pass(count, map, POLLPRI, exception);
      // A closed fd in the set: select() says EBADF, which closes the channel (a disconnect).
      this.#pass(count, map, POLLNVAL, closedFd);
    } else {
      for (let i = 0; i < count; i++) {
        const obj = owners[i];
        const fd = ready[2 * i] as number;
        if (obj === undefined || map.get(fd) !== obj) continue;
        const flags = ready[2 * i + 1] as number;
        if ((flags & (POLLHUP | POLLERR)) !== 0 && (flags & POLLIN) === 0 && this.#park(fd, obj)) continue;
        readwrite(obj, flags);
      }
    }
    owners.fill(undefined, 0, count);
  }

  /**
   * A hang-up without POLLIN for a dispatcher that is neither reading nor writing now, with input
   * still queued: instead of Python's handleClose(), which would drop that input, the fd leaves
   * the kernel's set until the dispatcher reads again (then POLLIN|POLLHUP drains it through
   * readwrite). A dispatcher that wants to write is not parked: its output can only fail now
   * (EPIPE, ECONNRESET), and waiting for it to drain would keep the fd forever, so readwrite
   * delivers the write event and the close, as Python does. Returns whether it parked the fd.
   */
  #park(fd: number, obj: Dispatcher): boolean {
    const watched = this.#watches.get(fd);
    if (watched === undefined || watched.owner !== obj || (watched.mask & (POLLIN | POLLOUT)) !== 0) return false;
    if (native.bytesReadable(fd) <= 0) return false;
    this.#apply(fd, watched.mask, 0);
    watched.mask = 0;
    this.#parked.add(fd);
    return true;
  }

  #pass(count: number, map: SocketMap, bit: number, handle: (obj: Dispatcher) => void): void {
    const ready = this.ready;
    const owners = this.#owners;
    for (let i = 0; i < count; i++) {
      if (((ready[2 * i + 1] as number) & bit) === 0) continue;
      const obj = owners[i];
      if (obj !== undefined && map.get(ready[2 * i] as number) === obj) handle(obj);
    }
  }

  /** The interest the kernel holds: what this iteration asked of it. */
  interestLists(): { read: number[]; write: number[]; except: number[] } {
    const lists = { read: [] as number[], write: [] as number[], except: [] as number[] };
    for (const [fd, { mask }] of this.#watches) {
      if (mask & POLLIN) lists.read.push(fd);
      if (mask & POLLOUT) lists.write.push(fd);
      if (mask & POLLPRI) lists.except.push(fd);
    }
    return lists;
  }

  trace(
    iteration: number,
    lists: { read: number[]; write: number[]; except: number[] },
    count: number,
    waitMs: number,
    dispatchMs: number,
  ): IterationTrace {
    const ready: { fd: number; events: number }[] = [];
    for (let i = 0; i < count; i++) {
      ready.push({ fd: this.ready[2 * i] as number, events: this.ready[2 * i + 1] as number });
    }
    return { iteration, backend: this.backend, ...lists, ready, waitMs, dispatchMs };
  }

  // MapWatcher: called by dispatchers of the map.

  forget(fd: number, dispatcher: Dispatcher): void {
    this.#changed.delete(dispatcher);
    this.#askedEveryIteration.delete(dispatcher);
    if (this.inTurn) {
      this.#unwatch(fd, dispatcher);
    } else {
      // The native thread is waiting on this set: the next turn drops the fd.
      this.#leftOutsideTurn.push({ fd, dispatcher });
      this.onChangeOutsideTurn?.();
    }
  }

  /** Whether a channel left while the thread waited: that wait may report EBADF for its fd. */
  get channelLeftDuringWait(): boolean {
    return this.#leftOutsideTurn.length > 0;
  }

  #unwatch(fd: number, dispatcher: Dispatcher): void {
    const watched = this.#watches.get(fd);
    if (watched === undefined || watched.owner !== dispatcher) return;
    this.#apply(fd, watched.mask, 0);
    this.#watches.delete(fd);
    this.#parked.delete(fd);
  }

  interestChanged(dispatcher?: Dispatcher): void {
    if (dispatcher !== undefined) this.#changed.add(dispatcher);
    if (!this.inTurn) this.onChangeOutsideTurn?.();
  }
}

// --- Which maps are being polled ---------------------------------------------------------

const busyMaps = new WeakSet<SocketMap>();

function claim(map: SocketMap): void {
  if (busyMaps.has(map)) {
    throw new Error('this map is already being polled by another loop(), loopSync() or poll() call');
  }
  busyMaps.add(map);
}

function release(map: SocketMap): void {
  busyMaps.delete(map);
}

// loopSync/poll/poll2 keep one reactor per map between calls, so a second call finds the
// interest set already in the kernel.
interface SyncState {
  poller: Poller;
  reactor: NativeReactor;
}

const syncStates = new WeakMap<SocketMap, SyncState>();

function syncStateFor(map: SocketMap, backend: string): SyncState {
  const existing = syncStates.get(map);
  if (existing !== undefined && existing.poller.backend === backend) return existing;
  if (existing !== undefined) dropSyncState(map);
  const reactor = createReactor(backend);
  const state = { poller: new Poller(backend, reactor), reactor };
  syncStates.set(map, state);
  watch(map, state.poller);
  return state;
}

function dropSyncState(map: SocketMap): void {
  const state = syncStates.get(map);
  if (state === undefined) return;
  syncStates.delete(map);
  unwatch(map, state.poller);
  state.reactor.close();
}

function createReactor(backend: string): NativeReactor {
  try {
    return new native.Reactor(backend);
  } catch (err) {
    throw nativeCreateError(err, backend);
  }
}

function nativeCreateError(err: unknown, backend: string): unknown {
  const { errno, fd } = err as { errno?: unknown; fd?: unknown };
  if (errno === ERANGE && typeof fd === 'number') {
    // loop() needs a wake-up fd of its own, and select() could not hold it.
    return new RangeError(
      `loop()'s wake-up fd ${fd} is beyond what select() can watch (FD_SETSIZE is ` +
        `${native.constants.FD_SETSIZE}); use backend 'poll' or 'epoll'`,
    );
  }
  return typeof errno === 'number' && errno > 0
    ? errnoError(-errno, backend === 'epoll' ? 'epoll_create1' : backend)
    : err;
}

/** The wait for one iteration: the loop's timeout, or sooner if a timer is due. */
function waitMs(map: SocketMap, loopTimeoutMs: number): number {
  const untilTimer = schedulerOf(map)?.msUntilNext();
  if (untilTimer === undefined) return loopTimeoutMs;
  const timerMs = Math.ceil(untilTimer);
  return loopTimeoutMs < 0 ? timerMs : Math.min(loopTimeoutMs, timerMs);
}

/** One synchronous iteration of the three steps. */
function iterateSync(
  state: SyncState,
  map: SocketMap,
  loopTimeoutMs: number,
  iteration: number,
  trace: ((it: IterationTrace) => void) | undefined,
): void {
  const { poller, reactor } = state;
  poller.updateInterest(map);
  const lists = trace !== undefined ? poller.interestLists() : null;
  const started = performance.now();
  const result = reactor.poll(poller.hasInvalid ? 0 : waitMs(map, loopTimeoutMs), poller.ready);
  if (result < 0) throw errnoError(result, state.poller.backend);
  const count = poller.reportInvalid(result);
  const waited = performance.now();
  poller.dispatch(count, map);
  schedulerOf(map)?.runDue();
  if (trace !== undefined && lists !== null) {
    trace(poller.trace(iteration, lists, count, waited - started, performance.now() - waited));
  }
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
  claim(map);
  try {
    const state = syncStateFor(map, backend);
    for (let n = 0; map.size > 0 && n < count; n++) {
      if (n > 0) signal?.throwIfAborted();
      iterateSync(state, map, loopTimeoutMs, n, trace);
    }
  } finally {
    release(map);
    // An emptied map needs no kernel state: free the backend (epoll's fd) now, not at GC.
    if (map.size === 0) dropSyncState(map);
  }
}

function pollOnce(timeout: unknown, map: unknown, backend: string): void {
  const loopTimeoutMs = timeoutMs(timeout);
  const target = checkMap(map);
  if (target.size === 0) return;
  claim(target);
  try {
    iterateSync(syncStateFor(target, backend), target, loopTimeoutMs, 0, undefined);
  } finally {
    release(target);
    if (target.size === 0) dropSyncState(target);
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
  claim(map);
  // The sync reactor of this map would miss what happens while the thread polls.
  dropSyncState(map);

  let thread: NativeThreadLoop;
  try {
    thread = new native.ThreadLoop(backend, onBatch);
  } catch (err) {
    release(map);
    throw nativeCreateError(err, backend);
  }
  const poller = new Poller(backend, thread);
  poller.onChangeOutsideTurn = () => thread.wake();
  watch(map, poller);
  // An abort ends the native thread's wait at once; the batch that follows stops the loop.
  const onAbort = (): void => thread.wake();
  signal?.addEventListener('abort', onAbort, { once: true });
  let iteration = 0;
  let done = false;
  let lists: { read: number[]; write: number[]; except: number[] } | null = null;
  // When the current iteration's wait times out. A wake-up with nothing ready resumes the
  // same wait, not a fresh one: frequent wake-ups must not postpone the timeout forever.
  let waitDeadline: number | null = null;

  function startWait(): void {
    poller.updateInterest(map);
    if (trace !== undefined) lists = poller.interestLists();
    poller.inTurn = false;
    const now = performance.now();
    waitDeadline ??= loopTimeoutMs < 0 ? Infinity : now + loopTimeoutMs;
    const remaining = waitDeadline === Infinity ? -1 : Math.max(0, Math.ceil(waitDeadline - now));
    thread.resume(poller.hasInvalid ? 0 : waitMs(map, remaining));
  }

  function finish(err?: unknown): void {
    if (done) return;
    done = true;
    signal?.removeEventListener('abort', onAbort);
    thread.stop();
    unwatch(map, poller);
    release(map);
    if (err === undefined) resolve();
    else reject(err);
  }

  function onBatch(result: number, waited: number, woken: boolean): void {
    if (done) return;
    poller.inTurn = true;
    try {
      let count_ = 0;
      if (result < 0) {
        // A dispatcher closed its fd while select()/poll() watched it: not an error.
        if (!(result === -EBADF && poller.channelLeftDuringWait)) throw errnoError(result, backend);
      } else if (result > 0) {
        count_ = thread.takeReady(poller.ready);
      }
      count_ = poller.reportInvalid(count_);
      const started = performance.now();
      poller.dispatch(count_, map);
      schedulerOf(map)?.runDue();
      // A wake-up with nothing ready is the bridge's business, not an iteration.
      if (count_ > 0 || !woken) {
        if (trace !== undefined && lists !== null) {
          trace(poller.trace(iteration, lists, count_, waited, performance.now() - started));
        }
        iteration++;
        waitDeadline = null;
      }
      if (signal?.aborted === true) finish(signal.reason);
      else if (map.size === 0 || iteration >= count) finish();
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
