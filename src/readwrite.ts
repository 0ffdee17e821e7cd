// Python's per-event helpers: read(), write() and readwrite() call a dispatcher's entry points
// for one ready fd and route what its handlers throw, exactly as asyncore.py does. The poller
// (poller.ts) calls them for every event a wait reports.
import { native } from './binding.js';
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI } from './constants.js';
import type { Dispatcher } from './dispatcher.js';
import { EBADF, ExitNow, errnoError, isDisconnect, isWouldBlock } from './errors.js';

/**
 * Where an exception from a handler goes: ExitNow leaves the loop, EAGAIN is a spurious
 * wake-up, a disconnect closes the channel, anything else goes to handleError.
 */
function handlerFailed(obj: Dispatcher, err: unknown): void {
  if (err instanceof ExitNow) throw err;
  if (isWouldBlock(err)) return;
  if (isDisconnect(err)) obj.handleClose();
  else obj.handleError(err);
}

/**
 * Python's `asyncore.read()`: calls `obj.handleReadEvent()` and routes what it throws as the loop does:
 * {@link ExitNow} propagates, `EAGAIN` is ignored, a disconnect error calls `handleClose()`, anything
 * else goes to `handleError()`.
 */
export function read(obj: Dispatcher): void {
  try {
    obj.handleReadEvent();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/** Python's `asyncore.write()`: {@link read} for `obj.handleWriteEvent()`. */
export function write(obj: Dispatcher): void {
  try {
    obj.handleWriteEvent();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/** select()'s EBADF for a closed fd in its sets: routed as a disconnect, which closes the channel. */
export function closedFd(obj: Dispatcher): void {
  handlerFailed(obj, errnoError(-EBADF, 'select', `fd ${String(obj.fileno())}`));
}

/** {@link read} for `obj.handleExptEvent()` (select's third set). */
export function exception(obj: Dispatcher): void {
  try {
    obj.handleExptEvent();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/**
 * Python's `asyncore.readwrite()`: dispatches one `poll()`-style result, in Python's order:
 * `POLLIN` to `handleReadEvent()`, `POLLOUT` to `handleWriteEvent()`, `POLLPRI` to `handleExptEvent()`,
 * then `POLLHUP`/`POLLERR`/`POLLNVAL` to `handleClose()`. Errors are routed as in {@link read}.
 *
 * One deliberate difference from Python: a hang-up loses no data. When `POLLHUP` or `POLLERR` comes
 * with `POLLIN` and the read handler consumed some of the bytes queued on the fd but not all, there is
 * no `handleClose()` yet: the fd is reported again in the next iteration, and the dispatcher keeps
 * reading until its read side reaches the end (an empty `recv()` closes it by the usual path) or every
 * queued byte was read. A read handler that consumed nothing, or one that closed the dispatcher
 * itself, ends it at once, as in Python (then without a second `handleClose()`).
 */
export function readwrite(obj: Dispatcher, flags: number): void {
  try {
    let hangUp = (flags & (POLLHUP | POLLERR | POLLNVAL)) !== 0;
    if (flags & POLLIN) {
      if (hangUp) hangUp = readOnHangUp(obj);
      else obj.handleReadEvent();
    }
    if (flags & POLLOUT) obj.handleWriteEvent();
    if (flags & POLLPRI) obj.handleExptEvent();
    if (hangUp) obj.handleClose();
  } catch (err) {
    handlerFailed(obj, err);
  }
}

/**
 * `handleReadEvent()` for a hang-up that came with readable data. Returns whether the hang-up
 * should close the dispatcher now: not while the handler is draining bytes that are still
 * queued (the level-triggered backend reports the fd again), and not when the handler already
 * closed it.
 */
function readOnHangUp(obj: Dispatcher): boolean {
  const fd = obj.fileno();
  if (fd === null) {
    obj.handleReadEvent();
    return true;
  }
  const before = native.bytesReadable(fd);
  obj.handleReadEvent();
  // Closed by its own handler (EOF or an error): that was its close.
  if (obj.fileno() !== fd) return obj.fileno() !== null;
  if (before <= 0) return true;
  const after = native.bytesReadable(fd);
  return !(after > 0 && after < before);
}
