// asyncore for Node.js: the public surface (see README.md). Re-exports only.
export type { Address } from './binding.js';
// AF_*, SOCK_*, SOL_SOCKET, SO_*, IPPROTO_TCP, TCP_NODELAY, SHUT_*, POLL* and FD_SETSIZE.
export * from './constants.js';
export { SocketError, ExitNow, compactTraceback, type CompactTraceback } from './errors.js';
export { Socket, socketpair } from './socket.js';
export { SplicePipe } from './splice.js';
export {
  Dispatcher,
  DispatcherWithSend,
  declareBuiltInPredicates,
  socketMap,
  type SocketMap,
} from './dispatcher.js';
export { FileDispatcher, FileWrapper } from './file.js';
export {
  loop,
  loopSync,
  poll,
  poll2,
  read,
  write,
  readwrite,
  closeAll,
  availableBackends,
  type BackendName,
  type IterationTrace,
  type LoopOptions,
  type LoopPromise,
} from './loop.js';
export { callLater, ScheduledCall } from './timers.js';
export { AsyncChat, SimpleProducer, findPrefixAtEnd, type Producer, type Terminator } from './asynchat.js';
