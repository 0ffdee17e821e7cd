// The poller: one map's interest, kept in a backend between iterations, and the dispatch of
// what a wait reports. Both loops drive it (loop.ts): loopSync() with the reactor itself as
// its sink, loop() through the thread side of native/bridge.cc (bridge.ts).
import { native } from './binding.js';
import { fdRangeError, syscallOf } from './backends.js';
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI } from './constants.js';
import { type Dispatcher, hasBuiltInPredicates } from './dispatcher.js';
import { EBADF, ERANGE, errnoError } from './errors.js';
import { closedFd, exception, read, readwrite, write } from './readwrite.js';
import type { MapWatcher, SocketMap } from './socketmap.js';

/** Where a poller sends interest changes: a NativeReactor (loopSync) or a ThreadSide (loop()). */
export interface InterestSink {
  /** Watch fd for mask (0: stop); 0 or -errno. */
  setInterest(fd: number, mask: number): number;
  /** Where the wait writes the ready fds: the poller's `ready`, registered again when it grows. */
  setReadyArray(out: Int32Array): void;
  /**
   * Interest may have changed outside the poller's own steps (a new dispatcher, send() from a
   * timer): a sink whose wait runs on another thread ends it, so the change is seen at once.
   */
  interestChanged?(): void;
}

interface Watch {
  owner: Dispatcher;
  mask: number;
  /**
   * The owner's readable and writable when last asked, and whether they were built in: while
   * they stay the same functions, hasBuiltInPredicates need not look them up again.
   */
  readable: unknown;
  writable: unknown;
  builtIn: boolean;
}

/** The fds of each kind of interest the kernel holds, for IterationTrace. */
export interface InterestLists {
  read: number[];
  write: number[];
  except: number[];
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
export class Poller implements MapWatcher {
  readonly backend: string;
  /** select's semantics (three passes: reads, writes, exceptions) or poll's (readwrite per fd). */
  readonly #selectStyle: boolean;
  readonly #sink: InterestSink;
  readonly #watches = new Map<number, Watch>();
  /** Dispatchers with predicates of their own: asked every iteration. */
  readonly #askedEveryIteration = new Set<Dispatcher>();
  /** Dispatchers with built-in predicates whose answers may have changed. */
  readonly #changed = new Set<Dispatcher>();
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
  /** [fd, events] pairs of the last wait, written by the sink's wait (see setReadyArray). */
  ready = new Int32Array(256);
  /** The dispatcher of each ready fd, looked up before any handler of the batch ran. */
  #owners: (Dispatcher | undefined)[] = [];
  /**
   * How many #owners the last dispatch filled. Their handlers may have changed what their
   * built-in predicates answer, so the next updateInterest asks them; they stay in #owners
   * until then, which costs less per event than adding each to #changed.
   */
  #dispatched = 0;

  constructor(backend: string, sink: InterestSink) {
    this.backend = backend;
    this.#selectStyle = backend === 'select';
    this.#sink = sink;
    sink.setReadyArray(this.ready);
  }

  /** Step 1: ask the dispatchers that may answer differently, and tell the kernel what changed. */
  updateInterest(map: SocketMap): void {
    const owners = this.#owners;
    // Setting an array's length is a call into V8's runtime, even to 0 on an empty array.
    if (this.#invalid.length > 0) this.#invalid.length = 0;
    if (this.#scanEverything) {
      this.#scanAll(map);
    } else {
      // Each dispatcher is asked once: those with predicates of their own, those that handled
      // an event in the last batch, those that reported a change.
      const asked = this.#askedEveryIteration;
      const changed = this.#changed;
      for (const obj of asked) this.#refreshChannel(obj, map);
      for (let i = 0; i < this.#dispatched; i++) {
        const obj = owners[i];
        if (obj === undefined || (asked.size > 0 && asked.has(obj)) || (changed.size > 0 && changed.has(obj))) continue;
        this.#refreshChannel(obj, map);
      }
      for (const obj of changed) {
        if (!asked.has(obj)) this.#refreshChannel(obj, map);
      }
      // A map changed behind our back (map.set / map.delete instead of addChannel and
      // delChannel) shows up as a size mismatch: then everything is asked once, as Python
      // always does. New channels reported themselves above, so an accept costs O(1).
      if (map.size !== this.#watches.size) this.#scanAll(map);
    }
    if (this.#changed.size > 0) this.#changed.clear();
    // A loop, not owners.fill(): fill() is a call into V8's C++ builtins.
    for (let i = 0; i < this.#dispatched; i++) owners[i] = undefined;
    this.#dispatched = 0;
    // Room for every watched fd, so one wait reports all of them.
    const room = 2 * (this.#watchedCount + this.#invalid.length);
    if (this.ready.length < room) {
      this.ready = new Int32Array(Math.max(room, 2 * this.ready.length));
      this.#sink.setReadyArray(this.ready);
    }
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
    if (this.#invalid.length > 0) this.#invalid.length = 0;
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
    const watched = this.#watches.get(fd);
    if (!this.#builtIn(obj, watched)) this.#askedEveryIteration.add(obj);
    if (this.#parked.size > 0 && this.#parked.has(fd)) {
      // A parked fd returns to the kernel once its dispatcher wants to read or write again.
      if ((mask & (POLLIN | POLLOUT)) === 0 && watched?.owner === obj) mask = 0;
      else this.#parked.delete(fd);
    }
    if (watched === undefined) {
      const watch = { owner: obj, mask: this.#apply(fd, 0, mask), readable: null, writable: null, builtIn: false };
      this.#watches.set(fd, watch);
    } else if (watched.owner !== obj) {
      // Another dispatcher took this fd number: start the kernel's view afresh.
      this.#askedEveryIteration.delete(watched.owner);
      this.#apply(fd, watched.mask, 0);
      watched.mask = 0;
      watched.owner = obj;
      watched.readable = null;
      watched.mask = this.#apply(fd, 0, mask);
    } else if (watched.mask !== mask) {
      watched.mask = this.#apply(fd, watched.mask, mask);
    }
  }

  /** hasBuiltInPredicates(obj), remembered in its watch while its predicates stay the same. */
  #builtIn(obj: Dispatcher, watched: Watch | undefined): boolean {
    /* eslint-disable @typescript-eslint/unbound-method -- compared by identity, never called */
    const { readable, writable } = obj;
    /* eslint-enable @typescript-eslint/unbound-method */
    if (watched?.owner !== obj) return hasBuiltInPredicates(obj);
    if (watched.readable !== readable || watched.writable !== writable) {
      watched.readable = readable;
      watched.writable = writable;
      watched.builtIn = hasBuiltInPredicates(obj);
    }
    return watched.builtIn;
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
      if (status === -ERANGE) throw fdRangeError(fd, this.backend);
      throw errnoError(status, syscallOf(this.backend, 'change'), `fd ${fd}`);
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
    // Owners of an earlier batch not asked yet (two batches without a wait between).
    for (let i = 0; i < this.#dispatched; i++) {
      const obj = owners[i];
      if (obj !== undefined) this.#changed.add(obj);
    }
    // Their handlers may change what their built-in predicates answer: updateInterest asks them.
    this.#dispatched = count;
    for (let i = 0; i < count; i++) owners[i] = map.get(ready[2 * i] as number);
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
  interestLists(): InterestLists {
    const lists: InterestLists = { read: [], write: [], except: [] };
    for (const [fd, { mask }] of this.#watches) {
      if (mask & POLLIN) lists.read.push(fd);
      if (mask & POLLOUT) lists.write.push(fd);
      if (mask & POLLPRI) lists.except.push(fd);
    }
    return lists;
  }

  // MapWatcher: called by dispatchers of the map.

  forget(fd: number, dispatcher: Dispatcher): void {
    this.#changed.delete(dispatcher);
    this.#askedEveryIteration.delete(dispatcher);
    this.#unwatch(fd, dispatcher);
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
    this.#sink.interestChanged?.();
  }
}
