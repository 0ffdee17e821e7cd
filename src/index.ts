// asyncore for Node.js: the public surface (see README.md). Re-exports only.
/**
 * Python's `asyncore` and `asynchat` for Node.js: a real `select()`, `poll()` or `epoll` readiness
 * loop over raw non-blocking sockets (a native addon), with Python's dispatcher classes on top.
 *
 * - {@link loopSync} is Python's `asyncore.loop()`; {@link loop} runs the same loop with its wait on
 *   a native thread, so Node's own event loop keeps running.
 * - Subclass {@link Dispatcher}, {@link DispatcherWithSend} or {@link AsyncChat} and override their
 *   `handle*` events; {@link Socket} is the raw socket underneath.
 * - {@link callLater} and {@link callEvery} run timers inside the loop.
 *
 * ```ts
 * import { Dispatcher, DispatcherWithSend, loopSync, type Socket } from 'asyncore';
 *
 * class EchoHandler extends DispatcherWithSend {
 *   override handleRead(): void {
 *     const data = this.recv(8192);
 *     if (data.length > 0) this.send(data);
 *   }
 * }
 *
 * class EchoServer extends Dispatcher {
 *   constructor(host: string, port: number) {
 *     super();
 *     this.createSocket();
 *     this.setReuseAddr();
 *     this.bind([host, port]);
 *     this.listen(5);
 *   }
 *   override handleAccepted(sock: Socket): void {
 *     new EchoHandler(sock);
 *   }
 * }
 *
 * new EchoServer('127.0.0.1', 8080);
 * loopSync(); // Python: asyncore.loop()
 * ```
 *
 * @packageDocumentation
 */
export type { Address } from './binding.js';
// AF_*, SOCK_*, SOL_SOCKET, SO_*, IPPROTO_*, TCP_*, IPV6_V6ONLY, SHUT_*, MSG_*, POLL* and FD_SETSIZE.
export * from './constants.js';
export { SocketError, ExitNow, compactTraceback, type CompactTraceback } from './errors.js';
export { Socket, socketpair } from './socket.js';
export { SplicePipe } from './splice.js';
export { Dispatcher, DispatcherWithSend, declareBuiltInPredicates } from './dispatcher.js';
export { socketMap, type SocketMap } from './socketmap.js';
export { FileDispatcher, FileWrapper } from './file.js';
export {
  loop,
  loopSync,
  poll,
  poll2,
  closeAll,
  type BackendName,
  type IterationTrace,
  type LoopOptions,
  type LoopPromise,
} from './loop.js';
export { read, write, readwrite } from './readwrite.js';
export { availableBackends } from './backends.js';
export { callEvery, callLater, ScheduledCall } from './timers.js';
export { SignalDispatcher } from './signals.js';
export { AsyncChat, SimpleProducer, findPrefixAtEnd, type Producer, type Terminator } from './asynchat.js';
export {
  serveWorkers,
  workerContext,
  inWorkerPool,
  WorkerPool,
  type WorkerPoolOptions,
  type WorkerContext,
  type WorkerContextOptions,
  type WorkerState,
  type WorkerStats,
} from './workers.js';
