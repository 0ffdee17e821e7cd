// How dispatchers tell the loop that polls their map about changes it must not miss.
//
// A loop registers a MapWatcher for the map it polls. A dispatcher that leaves the map
// calls forget() before its fd is closed (epoll and select must stop watching an fd while
// it is still open), and any change that can alter what readable()/writable() answer
// (send() buffering data, connect(), listen(), a new dispatcher) calls interestChanged(),
// so loop() on its native thread wakes at once instead of after the poll timeout.
import type { Dispatcher, SocketMap } from './dispatcher.js';

export interface MapWatcher {
  forget(fd: number, dispatcher: Dispatcher): void;
  // dispatcher is undefined when a timer was scheduled: the wait may have to end sooner.
  interestChanged(dispatcher?: Dispatcher): void;
}

const watchers = new WeakMap<SocketMap, MapWatcher>();

export function watch(map: SocketMap, watcher: MapWatcher): void {
  watchers.set(map, watcher);
}

export function unwatch(map: SocketMap, watcher: MapWatcher): void {
  if (watchers.get(map) === watcher) watchers.delete(map);
}

export function watcherOf(map: SocketMap): MapWatcher | undefined {
  return watchers.get(map);
}
