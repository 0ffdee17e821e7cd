// Socket: a thin wrapper over one raw non-blocking fd, shaped like Python's socket object.
// Every method is one system call; a failure throws SocketError, and on a non-blocking
// socket a call that would block throws SocketError('EAGAIN'), as in Python.
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';

import { type Address, native } from './binding.js';
import { AF_INET, AF_INET6, AF_UNIX, SOCK_STREAM } from './constants.js';
import { EBADF, SocketError, check, errnoError } from './errors.js';
import { type FdClaim, claimFd, releaseFd } from './finalize.js';

export type { Address } from './binding.js';

// Set while Socket.#adopt builds an instance around an fd that already exists.
let adoptedFd: number | null = null;

// getaddrinfo()'s codes (numbered by the C library, read from the addon) by the names Node
// uses for them: a name that does not resolve is ENOTFOUND.
const GAI_CODES: ReadonlyMap<number, string> = new Map(
  Object.entries(native.gaiCodes).map(([name, number]) => [
    number,
    name === 'EAI_NONAME' || name === 'EAI_NODATA' ? 'ENOTFOUND' : name,
  ]),
);

// Python's limit for getsockopt(level, option, buflen).
const MAX_OPTION_BYTES = 1024;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

// Receives land in a slab that is handed out in pieces and never written twice: recv()
// reads into the slab's unused tail and returns a view of the bytes that arrived, so nothing
// is copied and a handler may keep the Buffer (a slab lives while a view of it does, as
// Node's own Buffer pool does). A receive asked for more than the slab's room (asynchat reads
// 64 KiB at a time) lands in one scratch buffer shared by every socket, and the native side
// moves what arrived into the slab when it fits there after all; only more than that is
// copied out of the scratch, into a Buffer of exactly its size. So a recv(65536) that gets
// 64 bytes holds a 64-byte piece of a slab, like a recv(100) that does.
//
// The slab and the scratch are registered with the native side once, and the integers of a
// receive or a send travel in hotPath.args, not as arguments: this is the path of every
// event, and argument conversion was most of its cost (native/addon.cc, "The hot path").
const SLAB_SIZE = 16384;
const hot = native.hotPath;
const { args: hotArgs, FD, LENGTH, FLAGS, OFFSET } = hot;
let slabMemory = newSlab();
let slabUsed = 0;
let scratch = newScratch(65536);

/** A fresh slab, registered as the one recv() lands in. Not zero-filled: only bytes the kernel wrote are ever in a view handed out. */
function newSlab(): ArrayBufferLike {
  const slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
  hot.setRecvSlab(slab);
  return slab.buffer;
}

function newScratch(size: number): Buffer {
  const buffer = Buffer.allocUnsafeSlow(size);
  hot.setRecvScratch(buffer);
  return buffer;
}

// Kept small: it is inlined into every handler's read, and what does not fit in TurboFan's
// inlining budget becomes a call (callgrind saw ~800 instructions more per round trip when
// the rare case below was written inline).
function receive(fd: number, size: number, flags: number): Buffer {
  if (size > SLAB_SIZE - slabUsed) makeRoom(size);
  const offset = slabUsed;
  hotArgs[FD] = fd;
  hotArgs[LENGTH] = size;
  hotArgs[FLAGS] = flags;
  hotArgs[OFFSET] = offset;
  const got = check(hot.recv(), 'recv');
  // More than the slab's room: the bytes are at the scratch's start.
  if (got > SLAB_SIZE - offset) return takeScratch(got);
  // The next piece starts 8-byte aligned, as Node's pool aligns its pieces.
  slabUsed += (got + 7) & ~7;
  return Buffer.from(slabMemory, offset, got);
}

/**
 * Before a receive larger than the slab's room: a fresh slab when even the half-slab a large
 * receive most often gets would not fit, and a scratch buffer that holds the whole receive.
 */
function makeRoom(size: number): void {
  if (SLAB_SIZE - slabUsed < Math.min(size, SLAB_SIZE / 2)) {
    slabMemory = newSlab();
    slabUsed = 0;
  }
  scratchFor(size);
}

/** send(2) of `data` on fd: the count the kernel took, or -errno. */
function sendBytes(fd: number, data: Uint8Array, flags: number): number {
  hotArgs[FD] = fd;
  hotArgs[FLAGS] = flags;
  return hot.send(data);
}

/** The scratch buffer, grown (and registered) to hold at least n bytes. */
function scratchFor(n: number): Buffer {
  if (scratch.length < n) scratch = newScratch(Math.max(n, scratch.length * 2));
  return scratch;
}

/** The bytes to send: strings are sent as UTF-8. */
export function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  throw new TypeError(`data must be a Uint8Array, Buffer or string, not ${describe(data)}`);
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value !== 'object') return typeof value;
  // Read as unknown: an Object.create(null) value has no constructor at all.
  const constructor: unknown = Reflect.get(value, 'constructor');
  return typeof constructor === 'function' ? constructor.name : 'object';
}

function checkSize(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new TypeError(`${what} must be an integer, not ${describe(n)}`);
  }
  if (n < 0) throw new RangeError(`${what} must not be negative (got ${n})`);
  return n;
}

function checkInt(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new TypeError(`${what} must be an integer, not ${describe(n)}`);
  }
  return n;
}

/** A copy of the first n bytes of the scratch buffer. */
function takeScratch(n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  scratch.copy(out, 0, 0, n);
  return out;
}

/** The family of an address as the kernel returns it. */
function familyOf(address: Address): number {
  if (typeof address === 'string') return AF_UNIX;
  return address[0].includes(':') ? AF_INET6 : AF_INET;
}

export function formatAddress(address: Address | null | undefined): string {
  if (address === null || address === undefined) return 'None';
  if (typeof address === 'string') return address === '' ? "''" : address;
  return address[0].includes(':') ? `[${address[0]}]:${address[1]}` : `${address[0]}:${address[1]}`;
}

/**
 * One raw socket fd, shaped like Python's `socket.socket`: non-blocking and close-on-exec from the
 * start.
 *
 * Every method is one system call. A failure throws {@link SocketError}; on a non-blocking socket a
 * call that would block throws `SocketError` with code `'EAGAIN'`, as Python raises `BlockingIOError`.
 * Sends never raise SIGPIPE: a vanished peer gives `EPIPE`. Bad arguments throw `TypeError` or
 * `RangeError`, and a system call on a closed socket throws `SocketError('EBADF')`.
 *
 * A Socket that becomes unreachable while still open has its fd closed when it is garbage-collected,
 * with a `ResourceWarning` (`process.emitWarning`) that names the fd, as Python warns; call
 * {@link Socket.close} instead of relying on it.
 */
export class Socket {
  /** The address family: {@link AF_INET}, {@link AF_INET6} or {@link AF_UNIX}. */
  readonly family: number;
  /** The socket type: {@link SOCK_STREAM} or {@link SOCK_DGRAM}. */
  readonly type: number;
  #fd: number;
  #blocking = false;
  // What closes the fd if this Socket is garbage-collected while open (finalize.ts).
  readonly #claim: FdClaim;

  /** Creates a socket (`socket(2)`), as Python's `socket.socket(family, type)`. */
  constructor(family: number = AF_INET, type: number = SOCK_STREAM) {
    checkInt(family, 'family');
    checkInt(type, 'type');
    this.#fd = adoptedFd ?? check(native.socket(family, type), 'socket');
    this.family = family;
    this.type = type;
    this.#claim = claimFd(this, this.#fd, 'Socket', family, type);
  }

  /** Wraps an fd that is already open (accept, socketpair, fromFd). */
  static #adopt(fd: number, family: number, type: number): Socket {
    adoptedFd = fd;
    try {
      return new Socket(family, type);
    } finally {
      adoptedFd = null;
    }
  }

  /**
   * Adopts an open socket fd (it is made non-blocking). Family and type are asked of the kernel when
   * omitted. The new Socket owns the fd from then on: another Socket that held it no longer closes it
   * at garbage collection.
   */
  static fromFd(fd: number, family?: number, type?: number): Socket {
    checkSize(fd, 'fd');
    const [typeStatus, kernelType] = native.getsockopt(fd, native.constants.SOL_SOCKET, native.constants.SO_TYPE);
    check(typeStatus, 'getsockopt');
    let kernelFamily = family;
    if (kernelFamily === undefined) {
      const name = native.getsockname(fd);
      if (typeof name === 'number') throw errnoError(name, 'getsockname');
      kernelFamily = familyOf(name);
    }
    check(native.setNonBlocking(fd, true), 'fcntl');
    return Socket.#adopt(fd, kernelFamily, type ?? kernelType);
  }

  /** The fd, or -1 once closed (as Python's socket.fileno()). */
  fileno(): number {
    return this.#fd;
  }

  /** Whether {@link Socket.close} was called; {@link Socket.fileno} is -1 then. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  #open(syscall: string): number {
    if (this.#fd < 0) throw errnoError(-EBADF, syscall, 'on a closed socket');
    return this.#fd;
  }

  /**
   * Python's `setblocking()`: `true` makes calls wait, which blocks the whole JavaScript thread;
   * `false` (how every socket starts) makes them throw `EAGAIN` instead.
   */
  setBlocking(flag: boolean): void {
    // `!flag` also turns the 0/1 a JavaScript caller may pass (Python's setblocking(0)) into a boolean.
    const nonBlocking = !flag;
    check(native.setNonBlocking(this.#open('fcntl'), nonBlocking), 'fcntl');
    this.#blocking = !nonBlocking;
  }

  /** Python's `getblocking()`: whether the socket is in blocking mode. */
  getBlocking(): boolean {
    return this.#blocking;
  }

  /**
   * Binds a local address: `[host, port]` (host `''` means every interface; port 0 lets the kernel
   * pick, read it back with {@link Socket.getsockname}) or a path for AF_UNIX. A host name is resolved
   * first, as Python does.
   */
  bind(address: Address): void {
    const fd = this.#open('bind');
    const target = this.#resolve(address);
    check(native.bind(fd, target), 'bind', formatAddress(target));
  }

  /** Starts accepting connections; `backlog` bounds the queue of connections not accepted yet. */
  listen(backlog = 128): void {
    check(native.listen(this.#open('listen'), checkSize(backlog, 'backlog')), 'listen');
  }

  /** Throws on failure; on a non-blocking socket EINPROGRESS is thrown too (use connectEx). */
  connect(address: Address): void {
    const fd = this.#open('connect');
    const target = this.#resolve(address);
    check(native.connect(fd, target), 'connect', formatAddress(target));
  }

  /** Like Python's connect_ex: 0 or the errno (EINPROGRESS for a non-blocking connect). */
  connectEx(address: Address): number {
    const fd = this.#open('connect');
    const result = native.connect(fd, this.#resolve(address));
    return result < 0 ? -result : 0;
  }

  /**
   * Takes one waiting connection: a new socket (non-blocking, close-on-exec, same family and type) and
   * the peer's address. Throws `SocketError('EAGAIN')` when none is waiting.
   */
  accept(): [Socket, Address] {
    const result = native.accept(this.#open('accept'));
    if (typeof result === 'number') throw errnoError(result, 'accept');
    const [fd, peer] = result;
    return [Socket.#adopt(fd, this.family, this.type), peer];
  }

  /**
   * Sends what the kernel takes now and returns that count, which may be less than the data's length; a
   * string is sent as UTF-8.
   */
  send(data: Uint8Array | string, flags = 0): number {
    const fd = this.#open('send');
    return check(sendBytes(fd, toBytes(data), checkInt(flags, 'flags')), 'send');
  }

  /** Up to n bytes; an empty Buffer means the peer closed its side (EOF). */
  recv(n: number, flags = 0): Buffer {
    const fd = this.#open('recv');
    const size = checkSize(n, 'recv size');
    return receive(fd, size, checkInt(flags, 'flags'));
  }

  /** Receives into `buffer` without allocating; returns the byte count (0 at EOF). */
  recvInto(buffer: Uint8Array, n: number = buffer.length, flags = 0): number {
    const fd = this.#open('recv');
    if (!(buffer instanceof Uint8Array)) throw new TypeError('buffer must be a Uint8Array');
    const size = Math.min(checkSize(n, 'recv size'), buffer.length);
    return check(native.recvInto(fd, buffer, size, checkInt(flags, 'flags')), 'recv');
  }

  /**
   * Sends one datagram to `address` (SOCK_DGRAM); returns the bytes sent. `flags` are `MSG_*` values, as
   * for {@link Socket.send} (Python's `sendto(data, flags, address)`, with the flags last).
   */
  sendto(data: Uint8Array | string, address: Address, flags = 0): number {
    const fd = this.#open('sendto');
    const bytes = toBytes(data);
    const how = checkInt(flags, 'flags');
    const target = this.#resolve(address);
    return check(native.sendto(fd, bytes, how, target), 'sendto', formatAddress(target));
  }

  /**
   * Receives one datagram of at most `n` bytes, with the sender's address (`''` for an unnamed UNIX
   * socket).
   */
  recvfrom(n: number, flags = 0): [Buffer, Address] {
    const fd = this.#open('recvfrom');
    const size = checkSize(n, 'recv size');
    const result = native.recvfromInto(fd, scratchFor(size), size, checkInt(flags, 'flags'));
    if (typeof result === 'number') throw errnoError(result, 'recvfrom');
    return [takeScratch(result[0]), result[1] ?? ''];
  }

  /**
   * Ends one or both directions ({@link SHUT_RD}, {@link SHUT_WR}, {@link SHUT_RDWR}); the fd stays
   * open.
   */
  shutdown(how: number): void {
    check(native.shutdown(this.#open('shutdown'), checkInt(how, 'how')), 'shutdown');
  }

  /** Closes the fd; closing twice does nothing. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    releaseFd(this.#claim);
    check(native.close(fd), 'close');
  }

  /** The local address; after binding port 0 it tells the port the kernel picked. */
  getsockname(): Address {
    const result = native.getsockname(this.#open('getsockname'));
    if (typeof result === 'number') throw errnoError(result, 'getsockname');
    return result;
  }

  /** The peer's address; throws `SocketError('ENOTCONN')` on a socket that is not connected. */
  getpeername(): Address {
    const result = native.getpeername(this.#open('getpeername'));
    if (typeof result === 'number') throw errnoError(result, 'getpeername');
    return result;
  }

  /**
   * Sets an option, as Python's `setsockopt`: a number for an integer option, e.g.
   * `setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)` (`true` and `false` mean 1 and 0), or the option's raw
   * bytes for a struct-valued one, e.g. `SO_LINGER` as a `struct linger`.
   */
  setsockopt(level: number, option: number, value: number | boolean | Uint8Array): void {
    const fd = this.#open('setsockopt');
    checkInt(level, 'level');
    checkInt(option, 'option');
    check(native.setsockopt(fd, level, option, optionValue(value)), 'setsockopt');
  }

  /**
   * Reads an option, as Python's `getsockopt`: without `buflen` an integer option, e.g.
   * `getsockopt(SOL_SOCKET, SO_ERROR)`; with `buflen` (1 to 1024) a Buffer of the option's raw bytes,
   * at most `buflen` of them, for a struct-valued option such as `SO_LINGER`.
   */
  getsockopt(level: number, option: number): number;
  getsockopt(level: number, option: number, buflen: number): Buffer;
  getsockopt(level: number, option: number, buflen?: number): number | Buffer {
    const fd = this.#open('getsockopt');
    checkInt(level, 'level');
    checkInt(option, 'option');
    if (buflen === undefined) {
      const [status, value] = native.getsockopt(fd, level, option);
      check(status, 'getsockopt');
      return value;
    }
    const size = checkInt(buflen, 'buflen');
    if (size < 1 || size > MAX_OPTION_BYTES) {
      throw new RangeError(`buflen must be 1-${MAX_OPTION_BYTES} (got ${size})`);
    }
    const buffer = Buffer.alloc(size);
    const got = check(native.getsockoptInto(fd, level, option, buffer), 'getsockopt');
    return buffer.subarray(0, got);
  }

  /** `<Socket fd=7 family=2 type=1>`, for logs. */
  toString(): string {
    return `<Socket fd=${this.#fd} family=${this.family} type=${this.type}>`;
  }

  /** Validates an address for this socket's family and resolves a host name, as Python does. */
  #resolve(address: Address): Address {
    return resolveAddress(this.family, this.type, address);
  }
}

/** A setsockopt() value as the addon takes it: an int32, or raw bytes. */
function optionValue(value: unknown): number | Uint8Array {
  if (typeof value === 'boolean') return Number(value);
  if (value instanceof Uint8Array) return value;
  const number = checkInt(value, 'value');
  if (number < INT32_MIN || number > INT32_MAX) {
    throw new RangeError(`value must fit a C int (got ${number}); pass bytes for a wider option`);
  }
  return number;
}

/** Checks an address for a family and resolves its host to a numeric one (getaddrinfo). */
export function resolveAddress(family: number, type: number, address: Address): Address {
  if (family === AF_UNIX) {
    if (typeof address !== 'string') {
      throw new TypeError(`an AF_UNIX address must be a path string, not ${describe(address)}`);
    }
    return address;
  }
  if (!Array.isArray(address) || address.length !== 2) {
    throw new TypeError(`an AF_INET/AF_INET6 address must be [host, port], not ${describe(address)}`);
  }
  const [host, port] = address as readonly unknown[];
  if (typeof host !== 'string') throw new TypeError(`host must be a string, not ${describe(host)}`);
  if (typeof port !== 'number' || !Number.isInteger(port)) {
    throw new TypeError(`port must be an integer, not ${describe(port)}`);
  }
  if (port < 0 || port > 65535) throw new RangeError(`port must be 0-65535 (got ${port})`);
  if (host === '') return [family === AF_INET6 ? '::' : '0.0.0.0', port];
  const literal = isIP(host.split('%')[0] ?? host);
  if ((literal === 4 && family === AF_INET) || (literal === 6 && family === AF_INET6)) return [host, port];
  const resolved = native.resolve(family, type, host, port);
  if (typeof resolved !== 'string') {
    // glibc numbers its codes below 0, the BSDs and macOS above: errno carries the magnitude.
    const magnitude = Math.abs(resolved.gaiCode);
    const code = GAI_CODES.get(resolved.gaiCode) ?? `EAI_${magnitude}`;
    throw new SocketError(
      `getaddrinfo ${code} ${host}: ${resolved.message}`,
      code,
      resolved.errno !== 0 ? resolved.errno : magnitude,
      'getaddrinfo',
    );
  }
  return [resolved, port];
}

/**
 * Python's `socket.socketpair()`: two sockets connected to each other (non-blocking, close-on-exec),
 * AF_UNIX by default. Handy in tests, and to hand a loop a channel without a listener.
 */
export function socketpair(family: number = AF_UNIX, type: number = SOCK_STREAM): [Socket, Socket] {
  const result = native.socketpair(checkInt(family, 'family'), checkInt(type, 'type'));
  if (typeof result === 'number') throw errnoError(result, 'socketpair');
  return [Socket.fromFd(result[0], family, type), Socket.fromFd(result[1], family, type)];
}
