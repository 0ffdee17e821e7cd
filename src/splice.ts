// SplicePipe: moving bytes from one socket to another without copying them into JavaScript.
//
// A forwarder that recv()s into a buffer and send()s from it copies every byte out of the
// kernel and back in. splice(2) moves bytes from a socket into a kernel pipe, and from the
// pipe into another socket: the kernel hands pages over, and the bytes never reach user
// space. Linux has it; elsewhere `SplicePipe.supported` is false and callers copy instead.
import { native } from './binding.js';
import { EBADF, ENOSYS, check, errnoError } from './errors.js';
import type { Socket } from './socket.js';

let probed: boolean | undefined;

/**
 * A kernel pipe for moving bytes from one socket to another with `splice(2)`, without copying them into
 * JavaScript (Linux only; see {@link SplicePipe.supported}). {@link SplicePipe.fill} moves what a
 * socket received into the pipe, {@link SplicePipe.drain} moves it on into another socket; both are
 * non-blocking and throw `SocketError('EAGAIN')` when they would block. `asyncore-forward` uses one
 * pipe per direction of each connection.
 *
 * ```ts
 * const pipe = new SplicePipe();
 * pipe.fill(from);  // in a handleRead() of `from`
 * pipe.drain(to);   // in a handleWrite() of `to`
 * ```
 */
export class SplicePipe {
  /** The pipe's capacity in bytes, as the kernel granted it. */
  readonly capacity: number;
  #readFd: number;
  #writeFd: number;
  #pending = 0;

  /** Whether this platform can splice (Linux). Asked of the kernel once. */
  static get supported(): boolean {
    if (probed === undefined) {
      const fds = native.pipe();
      if (typeof fds === 'number') return false;
      // A zero-length splice does nothing but tells whether the call exists.
      probed = native.splice(fds[0], fds[1], 0) !== -ENOSYS;
      native.close(fds[0]);
      native.close(fds[1]);
    }
    return probed;
  }

  /**
   * A new pipe, both ends non-blocking. `capacity` is a wish: the kernel may round it up
   * to pages, or refuse to grow the pipe (per-user pipe limits), leaving its default size.
   */
  constructor(capacity = 256 * 1024) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer (got ${String(capacity)})`);
    }
    if (!SplicePipe.supported) throw errnoError(-ENOSYS, 'splice', 'on this platform');
    const fds = native.pipe();
    if (typeof fds === 'number') throw errnoError(fds, 'pipe');
    [this.#readFd, this.#writeFd] = fds;
    const size = native.setPipeSize(this.#writeFd, capacity);
    if (size < 0) {
      this.close();
      throw errnoError(size, 'fcntl', 'F_SETPIPE_SZ');
    }
    this.capacity = size;
  }

  /** Bytes in the pipe: moved in by fill(), not yet moved out by drain(). */
  get pending(): number {
    return this.#pending;
  }

  /** Whether {@link SplicePipe.close} was called. */
  get closed(): boolean {
    return this.#readFd < 0;
  }

  /**
   * Moves up to `max` bytes that `from` has received into the pipe. Returns the count, 0 at
   * EOF of `from`. Throws SocketError EAGAIN when `from` has nothing, or when the pipe has no
   * room left: the kernel counts a pipe's room in pages, so a pipe holding some bytes may
   * refuse more before `capacity` is reached. Fill an empty pipe to know which it was.
   */
  fill(from: Socket, max: number = this.capacity - this.#pending): number {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`fill() needs max >= 1 (got ${String(max)})`);
    const moved = check(native.splice(from.fileno(), this.#open('splice'), max), 'splice');
    this.#pending += moved;
    return moved;
  }

  /**
   * Moves up to `max` of the pending bytes into `to`. Returns the count (0 when nothing is
   * pending). Throws SocketError EAGAIN when `to` takes nothing now, EPIPE/ECONNRESET when
   * its peer is gone.
   */
  drain(to: Socket, max: number = this.#pending): number {
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`drain() needs max >= 0 (got ${String(max)})`);
    const length = Math.min(max, this.#pending);
    if (length === 0) return 0;
    this.#open('splice');
    const moved = check(native.splice(this.#readFd, to.fileno(), length), 'splice');
    this.#pending -= moved;
    return moved;
  }

  /** Closes both ends; what was pending is dropped. Closing twice is harmless. */
  close(): void {
    if (this.#readFd < 0) return;
    native.close(this.#readFd);
    native.close(this.#writeFd);
    this.#readFd = -1;
    this.#writeFd = -1;
    this.#pending = 0;
  }

  /** The write end, or EBADF on a closed pipe. */
  #open(syscall: string): number {
    if (this.#writeFd < 0) throw errnoError(-EBADF, syscall, 'on a closed pipe');
    return this.#writeFd;
  }
}
