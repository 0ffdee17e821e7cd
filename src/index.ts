// asyncore for Node.js: the public surface (see README.md). Re-exports only.
export type { Address } from './binding.js';
export {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  SOCK_STREAM,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SO_ERROR,
  SO_SNDBUF,
  SO_RCVBUF,
  IPPROTO_TCP,
  TCP_NODELAY,
  SHUT_RD,
  SHUT_WR,
  SHUT_RDWR,
  POLLIN,
  POLLPRI,
  POLLOUT,
  POLLERR,
  POLLHUP,
  POLLNVAL,
} from './constants.js';
export { SocketError, ExitNow, compactTraceback, type CompactTraceback } from './errors.js';
export { Socket, socketpair } from './socket.js';
export { Dispatcher, DispatcherWithSend, socketMap, type SocketMap } from './dispatcher.js';
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
