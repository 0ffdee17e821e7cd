// FileWrapper and FileDispatcher: Python's file_wrapper and file_dispatcher, which let
// the loop drive pipes, terminals and other non-socket fds (UNIX only).
import { Buffer } from 'node:buffer';
import { native } from './binding.js';
import { SOL_SOCKET, SO_ERROR } from './constants.js';
import { Dispatcher } from './dispatcher.js';
import { EBADF, check, errnoError } from './errors.js';
import { type FdClaim, claimFd, releaseFd } from './finalize.js';
import type { SocketMap } from './socketmap.js';
import { describe, toBytes } from './socket.js';

let scratch = Buffer.allocUnsafe(65536);

/**
 * Wraps a duplicate of an fd so it quacks like a socket: recv/send are read/write. One that becomes
 * unreachable while still open has its duplicate closed when it is garbage-collected, with a
 * `ResourceWarning`, as Python's `file_wrapper` does.
 */
export class FileWrapper {
  /** The duplicate this wrapper owns, or -1 after {@link FileWrapper.close}. */
  fd: number;
  readonly #claim: FdClaim;

  /**
   * Duplicates `fd` (`dup(2)`): the wrapper owns and closes the copy, the caller keeps the original.
   */
  constructor(fd: number) {
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
      throw new TypeError(`fd must be a non-negative integer, not ${describe(fd)}`);
    }
    this.fd = check(native.dup(fd), 'dup');
    this.#claim = claimFd(this, this.fd, 'FileWrapper');
  }

  /**
   * Reads up to `n` bytes (`read(2)`); an empty Buffer at EOF. Throws `SocketError('EAGAIN')` when
   * nothing is there on a non-blocking fd.
   */
  recv(n: number): Buffer {
    if (this.fd < 0) throw errnoError(-EBADF, 'read', 'on a closed file');
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new TypeError('size must be an integer');
    if (n < 0) throw new RangeError(`size must not be negative (got ${n})`);
    if (scratch.length < n) scratch = Buffer.allocUnsafe(n);
    const got = check(native.readInto(this.fd, scratch, n), 'read');
    return Buffer.from(scratch.subarray(0, got));
  }

  /** Writes what the fd takes now (`write(2)`) and returns that count; a string is written as UTF-8. */
  send(data: Uint8Array | string): number {
    if (this.fd < 0) throw errnoError(-EBADF, 'write', 'on a closed file');
    return check(native.write(this.fd, toBytes(data)), 'write');
  }

  /** Alias of {@link FileWrapper.recv}, as Python's `file_wrapper` has it. */
  read(n: number): Buffer {
    return this.recv(n);
  }

  /** Alias of {@link FileWrapper.send}. */
  write(data: Uint8Array | string): number {
    return this.send(data);
  }

  /** Only what asyncore asks: SO_ERROR, which is always 0 for a file. */
  getsockopt(level: number, option: number): number {
    if (level === SOL_SOCKET && option === SO_ERROR) return 0;
    throw new Error('FileWrapper implements only getsockopt(SOL_SOCKET, SO_ERROR)');
  }

  /** Closes the duplicate; closing twice does nothing. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    releaseFd(this.#claim);
    check(native.close(fd), 'close');
  }

  /** The duplicate fd (-1 after {@link FileWrapper.close}). */
  fileno(): number {
    return this.fd;
  }
}

/**
 * What {@link FileDispatcher} takes: an fd, or an object with an `fd` property or a `fileno()` method.
 *
 * @inline
 */
type FileLike = number | { fd: number } | { fileno(): number };

/** A dispatcher over a pipe, terminal or other file fd; it is `connected` from the start. */
export class FileDispatcher extends Dispatcher {
  /**
   * Python's `file_dispatcher(fd, map)`: wraps a duplicate of the fd, makes the fd non-blocking and
   * registers the dispatcher in `map` (default: the global {@link socketMap}).
   */
  constructor(fd: FileLike, map?: SocketMap) {
    super(null, map);
    this.connected = true;
    const number = fdOf(fd);
    this.setFile(number);
    check(native.setNonBlocking(number, true), 'fcntl');
  }

  /**
   * Python's `set_file()`: wraps a duplicate of `fd` in a {@link FileWrapper} and registers the
   * dispatcher under it.
   */
  setFile(fd: number): void {
    this.socket = new FileWrapper(fd);
    this._fileno = this.socket.fileno();
    this.addChannel();
  }
}

// `null` as well: a JavaScript caller may pass it, and the TypeError below names it.
function fdOf(fd: FileLike | null): number {
  if (typeof fd === 'number') return fd;
  if (typeof fd === 'object' && fd !== null) {
    if ('fileno' in fd && typeof fd.fileno === 'function') return fd.fileno();
    if ('fd' in fd && typeof fd.fd === 'number') return fd.fd;
  }
  throw new TypeError(`expected an fd, an object with fd, or one with fileno(), not ${describe(fd)}`);
}
