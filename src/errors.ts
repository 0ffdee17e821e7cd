// Errors: SocketError for failed system calls, ExitNow to leave a loop, and Python's
// compact_traceback for the default handleError.
import { constants } from 'node:os';

import { native } from './binding.js';

/** A failed system call, with Node's system-error fields. */
export class SocketError extends Error {
  /** The errno name, e.g. 'ECONNREFUSED' (or 'ENOTFOUND' for a name that does not resolve). */
  readonly code: string;
  /** The positive OS error number. */
  readonly errno: number;
  /** The system call that failed, e.g. 'connect'. */
  readonly syscall: string;

  /** Made by the package for a failed call; `message` names the call, the code and the OS's text. */
  constructor(message: string, code: string, errno: number, syscall: string) {
    super(message);
    this.name = 'SocketError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Raised by a handler to leave the loop at once: it propagates past handleError. */
export class ExitNow extends Error {
  /**
   * Throw it from a handler or a {@link callLater} function: {@link loopSync} throws it on,
   * {@link loop}'s promise rejects with it.
   */
  constructor(message = 'ExitNow') {
    super(message);
    this.name = 'ExitNow';
  }
}

// errno number -> name, from the platform's own table. Where two names share a number
// (EAGAIN/EWOULDBLOCK) the first listed wins, which is the POSIX one.
const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

// The errno numbers the loop compares binding results with, from the platform's own table.
export const EBADF = constants.errno.EBADF;
export const ERANGE = constants.errno.ERANGE;
export const ENOSYS = constants.errno.ENOSYS;

/** The error for a binding result of -errno (see binding.ts). */
export function errnoError(negativeErrno: number, syscall: string, detail?: string): SocketError {
  const errno = -negativeErrno;
  const code = errnoName(errno);
  const where = detail === undefined ? '' : ` ${detail}`;
  const text = native.strerror(errno);
  return new SocketError(`${syscall} ${code}${where}: ${text} (errno ${errno})`, code, errno, syscall);
}

/** 'EAGAIN' for 11, and so on; 'E<n>' for a number the platform does not name. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** Throws the SocketError for a negative binding result; returns a non-negative one. */
export function check(result: number, syscall: string, detail?: string): number {
  if (result < 0) throw errnoError(result, syscall, detail);
  return result;
}

/** Python's asyncore._DISCONNECTED: errors that mean the peer is gone. */
export const DISCONNECTED: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ENOTCONN',
  'ESHUTDOWN',
  'ECONNABORTED',
  'EPIPE',
  'EBADF',
]);

export function isDisconnect(err: unknown): boolean {
  return err instanceof SocketError && DISCONNECTED.has(err.code);
}

/** EAGAIN/EWOULDBLOCK: the call would block; the loop treats it as a spurious wake-up. */
export function isWouldBlock(err: unknown): boolean {
  return err instanceof SocketError && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK');
}

/**
 * What {@link compactTraceback} returns: Python's `((file, function, line), type, value, info)` without
 * the type and value, which an `Error` carries itself.
 */
export interface CompactTraceback {
  /** Where the error was raised: the innermost frame. */
  file: string;
  /** The function of the innermost frame (`'?'` when the stack does not name it). */
  func: string;
  /** The line of the innermost frame (0 when the error has no stack). */
  line: number;
  /** `[file|func|line] ...` for every frame, outermost first, as Python prints it. */
  info: string;
}

// "    at fn (file:line:col)" or "    at file:line:col"
const FRAME = /^\s*at (?:(.*?) \()?(.*?):(\d+):\d+\)?$/;

/** Python's asyncore.compact_traceback(), read from an error's stack. */
export function compactTraceback(err: unknown): CompactTraceback {
  const stack = err instanceof Error && typeof err.stack === 'string' ? err.stack : '';
  const frames: { file: string; func: string; line: number }[] = [];
  for (const text of stack.split('\n')) {
    const match = FRAME.exec(text);
    if (match === null) continue;
    frames.push({ func: match[1] ?? '?', file: match[2] ?? '?', line: Number(match[3]) });
  }
  if (frames.length === 0) frames.push({ file: '?', func: '?', line: 0 });
  // V8 lists the innermost frame first; Python's traceback lists it last.
  frames.reverse();
  const innermost = frames[frames.length - 1] ?? { file: '?', func: '?', line: 0 };
  const info = frames.map((f) => `[${f.file}|${f.func}|${f.line}]`).join(' ');
  return { file: innermost.file, func: innermost.func, line: innermost.line, info };
}
