// serveWorkers(): one loop per core, as nginx runs its workers. N worker_threads of one
// process each run their own loop over their own map, and each has its own listener on the
// same port (SO_REUSEPORT), so the kernel spreads the connections over them.
//
// The parent and each worker share:
// - a stop pipe (a socketpair): the parent writes one byte, a dispatcher in the worker's map
//   reads it and closes the map, so the worker's loop ends whichever loop it runs. loopSync()
//   holds the worker's JS thread, so a postMessage() would only be read after it returned;
//   a byte on an fd in the map is read within the next iteration.
// - a row of counters in a SharedArrayBuffer, which the worker bumps and the parent reads at
//   any time, again without needing the worker's JS thread.
// Messages go one way, worker to parent: 'ready' once it listens, 'failed' when it throws.
import { EventEmitter } from 'node:events';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { AF_UNIX } from './constants.js';
import { type SocketMap, socketMap } from './socketmap.js';
import { FileDispatcher } from './file.js';
import { closeAll } from './loop.js';
import { type Socket, socketpair } from './socket.js';

/** Where a pool keeps its part of a worker's `workerData` (the rest is the user's `data`). */
const CONTEXT_KEY = 'asyncoreWorkerPool';

interface ContextData {
  index: number;
  workers: number;
  data: unknown;
  first: unknown;
  stopFd: number;
  counterNames: string[];
  counters: SharedArrayBuffer;
}

type WorkerMessage = { kind: 'ready'; info: unknown } | { kind: 'failed'; error: unknown };

/** Options of {@link serveWorkers}. */
export interface WorkerPoolOptions {
  /** How many workers (loops) to run: a positive integer, usually one per core. */
  workers: number;
  /**
   * The module each worker runs (a file path or a `file:` URL). It calls {@link workerContext}, opens its
   * listener with `SO_REUSEPORT`, calls {@link WorkerContext.ready} and runs its loop until the map empties.
   */
  module: string | URL;
  /** Given to every worker as {@link WorkerContext.data}; anything `postMessage()` can copy. */
  data?: unknown;
  /** Names of the per-worker counters (see {@link WorkerContext.count}); default `['connections']`. */
  counters?: readonly string[];
  /**
   * Signals that stop the pool ({@link WorkerPool.stop}); default `['SIGINT', 'SIGTERM']`, `[]` for none.
   * The listeners are removed once the pool has stopped, so the process can exit.
   */
  signals?: readonly NodeJS.Signals[];
  /**
   * Milliseconds {@link WorkerPool.stop} waits for a worker before it terminates it; default 10,000. A terminated
   * worker does not close its fds: its loop must end by itself (the map closed) for a clean stop.
   */
  stopTimeoutMs?: number;
}

/** Where one worker is in its life. */
export type WorkerState = 'starting' | 'serving' | 'exited' | 'failed';

/** What {@link WorkerPool.stats} tells of one worker. */
export interface WorkerStats {
  /** Its place in the pool, from 0. */
  index: number;
  /** Its `threadId`, or -1 before it started. */
  threadId: number;
  /** Starting (before {@link WorkerContext.ready}), serving, exited, or failed (it threw). */
  state: WorkerState;
  /** What it passed to {@link WorkerContext.ready}. */
  info: unknown;
  /** Its counters by name (see {@link WorkerContext.count}); a running worker's may be a moment old. */
  counters: Record<string, number>;
}

/** The parent's view of one worker. */
class WorkerSlot {
  worker: Worker | null = null;
  /** The worker's threadId (a Worker forgets its own once it has exited). */
  threadId = -1;
  state: WorkerState = 'starting';
  info: unknown = undefined;
  exited: Promise<void> | null = null;
  /** Whether it has exited, or will never start (the pool stopped or worker 0 failed first). */
  ended = false;

  constructor(
    readonly index: number,
    /** The parent's end of the stop pipe. */
    readonly stopSender: Socket,
    /** The worker's end, kept open until the worker has its own duplicate of it. */
    readonly stopReceiver: Socket,
  ) {}

  closePipe(): void {
    this.stopReceiver.close();
    this.stopSender.close();
  }
}

/**
 * N loops in N worker threads, started by {@link serveWorkers}. Events:
 * - `'error'` `(error, index)`: worker `index` threw (it has closed its map and exited); the others go on
 *   serving. Without an `'error'` listener the error is written to stderr instead of being thrown.
 * - `'exit'` `(index, code)`: worker `index` ended.
 */
export class WorkerPool extends EventEmitter {
  /** Resolves with what every worker passed to {@link WorkerContext.ready}, in index order; rejects if one fails first. */
  readonly ready: Promise<unknown[]>;
  /** Resolves once every worker has ended (after {@link WorkerPool.stop}, or when all of them failed). */
  readonly closed: Promise<void>;
  readonly #slots: WorkerSlot[];
  readonly #module: string | URL;
  readonly #data: unknown;
  readonly #counterNames: string[];
  readonly #counters: SharedArrayBuffer;
  readonly #stopTimeoutMs: number;
  readonly #signals: readonly NodeJS.Signals[];
  readonly #onSignal = (): void => void this.stop();
  #stopping: Promise<void> | null = null;
  #markReady: (infos: unknown[]) => void = () => undefined;
  #failReady: (err: unknown) => void = () => undefined;
  #markClosed: () => void = () => undefined;

  /** Use {@link serveWorkers}. */
  constructor(options: WorkerPoolOptions) {
    super();
    const { workers, module } = options;
    if (typeof workers !== 'number' || !Number.isInteger(workers)) {
      throw new TypeError(`workers must be an integer (got ${String(workers)})`);
    }
    if (workers < 1) throw new RangeError(`workers must be at least 1 (got ${workers})`);
    if (typeof module !== 'string' && !(module instanceof URL)) {
      throw new TypeError('module must be a path or a file: URL');
    }
    const counterNames = [...(options.counters ?? ['connections'])];
    if (counterNames.some((name) => typeof name !== 'string') || new Set(counterNames).size !== counterNames.length) {
      throw new TypeError('counters must be distinct strings');
    }
    const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    // setTimeout() would read a delay past 2^31 - 1 ms (Infinity too) as 1 ms.
    if (typeof stopTimeoutMs !== 'number' || !(stopTimeoutMs >= 0 && stopTimeoutMs <= 0x7fffffff)) {
      throw new RangeError(`stopTimeoutMs must be 0 to 2^31 - 1 milliseconds (got ${String(stopTimeoutMs)})`);
    }
    this.#module = module;
    this.#data = options.data;
    this.#counterNames = counterNames;
    this.#counters = new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * workers * Math.max(1, counterNames.length));
    this.#stopTimeoutMs = stopTimeoutMs;
    this.#signals = options.signals ?? ['SIGINT', 'SIGTERM'];
    this.ready = new Promise((resolve, reject) => {
      this.#markReady = resolve;
      this.#failReady = reject;
    });
    // Whoever awaits only `closed` must not get an unhandled rejection from `ready`.
    this.ready.catch(() => undefined);
    this.closed = new Promise((resolve) => (this.#markClosed = resolve));
    this.#slots = [];
    for (let index = 0; index < workers; index++) {
      const [sender, receiver] = socketpair(AF_UNIX);
      this.#slots.push(new WorkerSlot(index, sender, receiver));
    }
    for (const signal of this.#signals) process.on(signal, this.#onSignal);
    // On the next tick, so that listeners added right after serveWorkers() returns hear every event.
    process.nextTick(() => void this.#start());
  }

  /** How many workers the pool was started with. */
  get size(): number {
    return this.#slots.length;
  }

  /**
   * Worker 0 starts first, so that a server asked for port 0 can let the kernel pick a port there and the
   * others bind the same one ({@link WorkerContext.first}); the rest then start together.
   */
  async #start(): Promise<void> {
    const [leader, ...rest] = this.#slots as [WorkerSlot, ...WorkerSlot[]];
    const first = await this.#launch(leader, undefined);
    if (!first.ok) {
      for (const slot of rest) this.#skip(slot);
      return;
    }
    const results = await Promise.all(rest.map((slot) => this.#launch(slot, first.info)));
    if (results.every((r) => r.ok)) this.#markReady(this.#slots.map((slot) => slot.info));
  }

  #launch(slot: WorkerSlot, first: unknown): Promise<{ ok: boolean; info?: unknown }> {
    if (this.#stopping !== null) {
      this.#skip(slot);
      return Promise.resolve({ ok: false });
    }
    const context: ContextData = {
      index: slot.index,
      workers: this.#slots.length,
      data: this.#data,
      first,
      stopFd: slot.stopReceiver.fileno(),
      counterNames: this.#counterNames,
      counters: this.#counters,
    };
    let worker: Worker;
    try {
      worker = new Worker(this.#module, { workerData: { [CONTEXT_KEY]: context } });
    } catch (err) {
      // A module path Worker refuses (a relative one, say): that worker fails before it starts.
      this.#failed(slot, err);
      this.#skip(slot, 'failed');
      return Promise.resolve({ ok: false });
    }
    slot.worker = worker;
    slot.threadId = worker.threadId;
    return new Promise((resolve) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message.kind === 'ready' && slot.state === 'starting') {
          slot.state = 'serving';
          slot.info = message.info;
          // The worker holds its own duplicate of its end of the pipe now.
          slot.stopReceiver.close();
          resolve({ ok: true, info: message.info });
        } else if (message.kind === 'failed') {
          this.#failed(slot, message.error);
          resolve({ ok: false });
        }
      });
      // What the worker threw before workerContext() caught its errors (e.g. while loading).
      worker.on('error', (error) => {
        this.#failed(slot, error);
        resolve({ ok: false });
      });
      slot.exited = new Promise((exited) => {
        worker.on('exit', (code) => {
          if (slot.state === 'starting' && this.#stopping === null) {
            this.#failReady(new Error(`worker ${slot.index} exited before it was ready`));
          }
          if (slot.state !== 'failed') slot.state = 'exited';
          slot.ended = true;
          slot.closePipe();
          resolve({ ok: false });
          this.emit('exit', slot.index, code);
          exited();
          this.#checkClosed();
        });
      });
    });
  }

  /** A worker that will not start. */
  #skip(slot: WorkerSlot, state: WorkerState = 'exited'): void {
    slot.state = state;
    slot.ended = true;
    slot.closePipe();
    this.#checkClosed();
  }

  #failed(slot: WorkerSlot, error: unknown): void {
    if (slot.state === 'failed') return;
    const before = slot.state;
    slot.state = 'failed';
    if (before === 'starting') this.#failReady(error);
    if (this.listenerCount('error') > 0) {
      this.emit('error', error, slot.index);
    } else {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(`asyncore worker ${slot.index} failed: ${text}\n`);
    }
  }

  #checkClosed(): void {
    if (!this.#slots.every((slot) => slot.ended)) return;
    this.#failReady(new Error('the pool ended before every worker was ready'));
    for (const signal of this.#signals) process.removeListener(signal, this.#onSignal);
    this.#markClosed();
  }

  /**
   * Stops every worker: each one's map is closed, which ends its loop, and it exits. Resolves once all of them
   * have ended; a worker that has not ended after `stopTimeoutMs` is terminated. Calling it again returns the
   * same promise.
   */
  stop(): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    this.#stopping = this.#stopAll();
    return this.#stopping;
  }

  async #stopAll(): Promise<void> {
    for (const slot of this.#slots) {
      if (slot.worker === null || slot.stopSender.fileno() < 0) continue;
      try {
        slot.stopSender.send('s');
      } catch {
        // The worker is already gone and took its end of the pipe with it.
      }
    }
    await Promise.all(this.#slots.map((slot) => this.#awaitExit(slot)));
    // Workers not launched yet (stop() while worker 0 was starting) are skipped by #launch.
    await this.closed;
  }

  async #awaitExit(slot: WorkerSlot): Promise<void> {
    const { worker, exited } = slot;
    if (worker === null || exited === null) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.#stopTimeoutMs)));
    if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
    clearTimeout(timer);
    await exited;
  }

  /** Each worker's state and counters, read now (a running worker does not have to answer). */
  stats(): WorkerStats[] {
    const counters = new Float64Array(this.#counters);
    const width = Math.max(1, this.#counterNames.length);
    return this.#slots.map((slot) => ({
      index: slot.index,
      threadId: slot.threadId,
      state: slot.state,
      info: slot.info,
      counters: Object.fromEntries(this.#counterNames.map((name, i) => [name, counters[slot.index * width + i] ?? 0])),
    }));
  }
}

/**
 * Runs `options.workers` loops in as many worker threads of this process, as nginx runs its workers: each worker
 * runs `options.module`, which opens its own listener on the same port with `SO_REUSEPORT` (the kernel spreads
 * the connections over the listeners) and runs its own loop over its own map. SIGINT and SIGTERM stop all of them
 * cleanly (see {@link WorkerPool.stop}). A worker that throws is reported (`'error'`) and the others keep serving.
 *
 * ```ts
 * // main.ts
 * const pool = serveWorkers({ workers: 2, module: new URL('./worker.js', import.meta.url), data: { port: 8080 } });
 * await pool.ready;
 * await pool.closed; // after SIGINT / SIGTERM
 *
 * // worker.ts
 * const ctx = workerContext<{ port: number }>();
 * const server = new EchoServer(ctx.data.port); // setsockopt(SOL_SOCKET, SO_REUSEPORT, 1) before bind()
 * ctx.ready();
 * loopSync();
 * ```
 */
export function serveWorkers(options: WorkerPoolOptions): WorkerPool {
  // A JavaScript caller may pass anything.
  const given: unknown = options;
  if (typeof given !== 'object' || given === null) throw new TypeError('serveWorkers() needs an options object');
  return new WorkerPool(options);
}

// --- The worker's side -----------------------------------------------------------------------

/** What {@link workerContext} gives a worker of a {@link WorkerPool}. */
export interface WorkerContext<T = unknown> {
  /** This worker's place in the pool, from 0. */
  readonly index: number;
  /** How many workers the pool has. */
  readonly workers: number;
  /** The pool's {@link WorkerPoolOptions.data}. */
  readonly data: T;
  /**
   * What worker 0 passed to {@link WorkerContext.ready} (undefined in worker 0 itself): a server asked for port
   * 0 lets worker 0 pick it and binds the others to the same one.
   */
  readonly first: unknown;
  /** The map that the pool's stop dispatcher joined; the pool stops this worker by closing it. */
  readonly map: SocketMap;
  /** Tells the parent that this worker serves (call it once its listener listens), with `info` for it. */
  ready(info?: unknown): void;
  /** Adds `by` (default 1) to this worker's counter `name`, one of {@link WorkerPoolOptions.counters}. */
  count(name: string, by?: number): void;
}

/** Options of {@link workerContext}. */
export interface WorkerContextOptions {
  /** The map the worker's loop polls; default the global {@link socketMap} (each worker thread has its own). */
  map?: SocketMap;
  /** What stopping means; default: close every dispatcher of the map, which ends the loop. */
  onStop?: () => void;
}

/** Whether this thread is a worker started by {@link serveWorkers}. */
export function inWorkerPool(): boolean {
  return !isMainThread && contextData() !== null;
}

function contextData(): ContextData | null {
  const data: unknown = workerData;
  if (typeof data !== 'object' || data === null || !(CONTEXT_KEY in data)) return null;
  return (data as Record<string, ContextData>)[CONTEXT_KEY] ?? null;
}

/** Reads the stop pipe: a byte (the pool's stop()) or its end (the parent is gone) stops the worker. */
class StopDispatcher extends FileDispatcher {
  constructor(
    fd: number,
    map: SocketMap,
    readonly onStop: () => void,
  ) {
    super(fd, map);
  }

  override writable(): boolean {
    return false;
  }

  override handleRead(): void {
    if (this.recv(16).length > 0) this.onStop();
  }

  override handleClose(): void {
    this.close();
    this.onStop();
  }
}

let current: WorkerContext | null = null;

/**
 * The context of a worker started by {@link serveWorkers} (the same object on every call). The first call puts
 * the pool's stop dispatcher into the map and arranges that an error this worker does not catch closes the
 * map (its listener among the rest, so the kernel stops sending it connections) and is reported to the parent.
 * Throws outside such a worker.
 */
export function workerContext<T = unknown>(options: WorkerContextOptions = {}): WorkerContext<T> {
  if (current !== null) return current as WorkerContext<T>;
  const context = contextData();
  const port = parentPort;
  if (isMainThread || context === null || port === null) {
    throw new Error('workerContext() works only in a worker started by serveWorkers()');
  }
  const map = options.map ?? socketMap;
  const onStop = options.onStop ?? ((): void => closeAll(map, true));
  new StopDispatcher(context.stopFd, map, onStop);
  const counters = new Float64Array(context.counters);
  const base = context.index * Math.max(1, context.counterNames.length);
  const slots = new Map(context.counterNames.map((name, i) => [name, base + i]));
  process.on('uncaughtException', (error) => {
    closeAll(map, true);
    port.postMessage({ kind: 'failed', error } satisfies WorkerMessage);
    process.exit(1);
  });
  current = {
    index: context.index,
    workers: context.workers,
    data: context.data,
    first: context.first,
    map,
    ready(info?: unknown): void {
      port.postMessage({ kind: 'ready', info } satisfies WorkerMessage);
    },
    count(name: string, by = 1): void {
      const slot = slots.get(name);
      if (slot === undefined) throw new RangeError(`no counter named ${JSON.stringify(name)} in this pool`);
      counters[slot] = (counters[slot] ?? 0) + by;
    },
  };
  return current as WorkerContext<T>;
}
