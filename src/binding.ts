// The typed view of the native addon (native/addon.cc, native/reactor_wrap.cc and
// native/bridge.cc).
//
// Conventions: a function that makes a system call returns -errno (a negative number) on
// failure instead of throwing, so callers in the hot path can treat EAGAIN as a value.
// errors.ts turns such a number into a SocketError where the public API throws.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** `[host, port]` for AF_INET/AF_INET6, a path for AF_UNIX. */
export type Address = readonly [host: string, port: number] | string;

export interface NativeReactor {
  readonly backend: string;
  /** Watch fd for mask (POLLIN|POLLOUT|POLLPRI, 0: stop). 0 or -errno; -ERANGE: fd too large. */
  setInterest(fd: number, mask: number): number;
  /** Where poll() writes the ready fds from now on, as [fd, events] pairs (kept by the addon). */
  setReadyArray(out: Int32Array): void;
  /** Wait up to timeoutMs (negative: forever); the ready fds go to the ready array. */
  poll(timeoutMs: number): number;
  close(): void;
}

export interface NativeThreadLoop {
  readonly backend: string | null;
  /** Only in the JS turn (inside onBatch, or before the first resume). */
  setInterest(fd: number, mask: number): number;
  /** Where each batch's ready fds go, as [fd, events] pairs, before onBatch (kept by the addon). */
  setReadyArray(out: Int32Array): void;
  /** Ends the JS turn: the thread waits up to timeoutMs, then calls onBatch. */
  resume(timeoutMs: number): void;
  /** Ends the current wait at once (thread-safe, cheap, coalesced). */
  wake(): void;
  /** Stops and joins the thread; idempotent. */
  stop(): void;
  ref(): void;
  unref(): void;
}

/**
 * Socket.recv() and Socket.send() without argument conversion: write the integers to the
 * `args` slots, then call. Results as elsewhere: a count, or -errno.
 */
export interface NativeHotPath {
  readonly args: Int32Array;
  /** Slot indices into args. */
  readonly FD: number;
  readonly LENGTH: number;
  readonly FLAGS: number;
  readonly OFFSET: number;
  /** recv() receives into this buffer from now on (the native side keeps it alive). */
  setRecvSlab(slab: Uint8Array): void;
  /** A receive larger than the slab's room lands in this buffer first (kept alive likewise). */
  setRecvScratch(scratch: Uint8Array): void;
  /**
   * Up to args[LENGTH] bytes from args[FD] with args[FLAGS], for slab[args[OFFSET]...]: a count
   * that fits in the slab from that offset is there, a larger one at the scratch's start.
   */
  recv(): number;
  /** `data` to args[FD] with args[FLAGS]. */
  send(data: Uint8Array): number;
}

export type BatchCallback = (result: number, waitMs: number, woken: boolean) => void;

export interface ResolveFailure {
  gaiCode: number;
  errno: number;
  message: string;
}

export interface NativeConstants {
  AF_INET: number;
  AF_INET6: number;
  AF_UNIX: number;
  AF_UNSPEC: number;
  SOCK_STREAM: number;
  SOCK_DGRAM: number;
  SOL_SOCKET: number;
  SO_REUSEADDR: number;
  SO_REUSEPORT: number;
  SO_ERROR: number;
  SO_SNDBUF: number;
  SO_RCVBUF: number;
  SO_KEEPALIVE: number;
  SO_TYPE: number;
  SO_LINGER: number;
  SO_BROADCAST: number;
  SO_RCVLOWAT: number;
  SO_RCVTIMEO: number;
  SO_SNDTIMEO: number;
  IPPROTO_TCP: number;
  TCP_NODELAY: number;
  IPPROTO_IPV6: number;
  IPV6_V6ONLY: number;
  // The keepalive trio exists on Linux, macOS (TCP_KEEPIDLE is its TCP_KEEPALIVE) and FreeBSD.
  TCP_KEEPIDLE: number;
  TCP_KEEPINTVL: number;
  TCP_KEEPCNT: number;
  SHUT_RD: number;
  SHUT_WR: number;
  SHUT_RDWR: number;
  MSG_PEEK: number;
  MSG_OOB: number;
  MSG_DONTWAIT: number;
  MSG_WAITALL: number;
  POLLIN: number;
  POLLPRI: number;
  POLLOUT: number;
  POLLERR: number;
  POLLHUP: number;
  POLLNVAL: number;
  FD_SETSIZE: number;
}

/** getaddrinfo()'s error codes as this C library numbers them (EAI_NODATA and EAI_ADDRFAMILY may be absent). */
export type NativeGaiCodes = Readonly<Record<string, number>>;

export interface NativeBinding {
  constants: NativeConstants;
  gaiCodes: NativeGaiCodes;
  socket(family: number, type: number): number;
  socketpair(family: number, type: number): [number, number] | number;
  close(fd: number): number;
  dup(fd: number): number;
  setNonBlocking(fd: number, nonBlocking: boolean): number;
  /** Addresses passed in are numeric: resolve names first. */
  bind(fd: number, address: Address): number;
  listen(fd: number, backlog: number): number;
  accept(fd: number): [number, Address] | number;
  connect(fd: number, address: Address): number;
  shutdown(fd: number, how: number): number;
  /** recv() and send() for the event path, their integers passed in `args` (native/addon.cc). */
  hotPath: NativeHotPath;
  /** Receives into buffer[offset ...] (offset default 0). */
  recvInto(fd: number, buffer: Uint8Array, length: number, flags: number, offset?: number): number;
  sendto(fd: number, data: Uint8Array, flags: number, address: Address): number;
  recvfromInto(fd: number, buffer: Uint8Array, length: number, flags: number): [number, Address | null] | number;
  readInto(fd: number, buffer: Uint8Array, length: number): number;
  write(fd: number, data: Uint8Array): number;
  /** [readFd, writeFd], both non-blocking, or -errno. */
  pipe(): [number, number] | number;
  /** The pipe's size afterwards (granted, or kept when refused), or -errno. */
  setPipeSize(fd: number, bytes: number): number;
  /** splice(2) without offsets: bytes moved (0 at EOF) or -errno (-ENOSYS off Linux). */
  splice(fdIn: number, fdOut: number, length: number): number;
  getsockname(fd: number): Address | number;
  getpeername(fd: number): Address | number;
  /** An int option from a number, or the option's raw bytes from a Uint8Array. */
  setsockopt(fd: number, level: number, option: number, value: number | Uint8Array): number;
  getsockopt(fd: number, level: number, option: number): [number, number];
  /** The option's raw bytes into buffer: how many the kernel wrote, or -errno. */
  getsockoptInto(fd: number, level: number, option: number, buffer: Uint8Array): number;
  resolve(family: number, type: number, host: string, port: number): string | ResolveFailure;
  strerror(errno: number): string;
  /** Routes a signal to a wake-up pipe as well (Python's set_wakeup_fd); its read end or -errno. */
  signalWakeupFd(signal: number): number;
  availableBackends(): string[];
  /** Bytes queued for reading on fd (ioctl FIONREAD), or -errno. */
  bytesReadable(fd: number): number;
  Reactor: new (backend: string) => NativeReactor;
  ThreadLoop: new (backend: string, onBatch: BatchCallback) => NativeThreadLoop;
}

type NodeGypBuild = (root: string) => unknown;

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  // ASYNCORE_ADDON names another build of the same sources (the sanitizer build in CI).
  const override = process.env['ASYNCORE_ADDON'];
  if (override !== undefined && override !== '') return require(override) as NativeBinding;
  const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
  const root = fileURLToPath(new URL('..', import.meta.url));
  return nodeGypBuild(root) as NativeBinding;
}

export const native: NativeBinding = load();
