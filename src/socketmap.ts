// The socket map (Python's asyncore.socket_map) and everything the package keeps per map.
//
// A map stays what Python made it: a plain fd -> dispatcher dict that user code may read and
// even change. What the loop, the timers and the dispatchers need beside it lives in one
// MapState per map, held in a WeakMap (pyftpdlib's IOLoop owns its socket_map and scheduler
// the same way), so a map that is dropped takes its state with it.
//
// This module imports nothing at run time, so every other one can depend on it.
import type { NativeReactor } from './binding.js';
import type { Dispatcher } from './dispatcher.js';
import type { Poller } from './poller.js';
import type { Scheduler } from './timers.js';

/** fd -> dispatcher: what a loop polls. */
export type SocketMap = Map<number, Dispatcher>;

/** The map used when none is given, as Python's asyncore.socket_map. */
export const socketMap: SocketMap = new Map();

/**
 * What the loop polling a map must hear from its dispatchers. A dispatcher that leaves the map
 * calls forget() before its fd is closed (epoll and select must stop watching an fd while it is
 * still open), and any change that can alter what readable()/writable() answer (send() buffering
 * data, connect(), listen(), a new dispatcher) calls interestChanged(), so loop() on its native
 * thread wakes at once instead of after the poll timeout.
 */
export interface MapWatcher {
  forget(fd: number, dispatcher: Dispatcher): void;
  // dispatcher is undefined when a timer was scheduled: the wait may have to end sooner.
  interestChanged(dispatcher?: Dispatcher): void;
}

/** loopSync/poll/poll2's reactor for a map, kept between calls so the kernel keeps the interest set. */
export interface SyncState {
  poller: Poller;
  reactor: NativeReactor;
}

/** What the package keeps for one map beside Python's fd -> dispatcher dict. */
export interface MapState {
  /** The poller of the loop that polls the map (or last polled it with loopSync). */
  watcher: MapWatcher | undefined;
  /** The map's callLater/callEvery timers, made by the first one. */
  scheduler: Scheduler | undefined;
  /** loopSync's reactor, between calls. */
  sync: SyncState | undefined;
  /** Whether a loop is polling the map now: a second one is refused. */
  polled: boolean;
}

const states = new WeakMap<SocketMap, MapState>();

/** The state of a map, made on first use. */
export function stateOf(map: SocketMap): MapState {
  let state = states.get(map);
  if (state === undefined) {
    state = { watcher: undefined, scheduler: undefined, sync: undefined, polled: false };
    states.set(map, state);
  }
  return state;
}

/** The state of a map if anything was ever kept for it; for paths that only read. */
export function existingStateOf(map: SocketMap): MapState | undefined {
  return states.get(map);
}
