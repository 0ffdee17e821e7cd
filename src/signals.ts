// SignalDispatcher: ends a loopSync() on SIGINT/SIGTERM, as Python's signal.set_wakeup_fd().
//
// loopSync() holds the JS thread, so process.on('SIGINT') listeners only run after it
// returns. The native side also writes each signal's number to a pipe; this dispatcher
// watches the pipe and calls onSignal from inside the loop. Under loop() Node's own
// listeners work as usual, and this dispatcher works there too.
import { constants } from 'node:os';

import { native } from './binding.js';
import type { SocketMap } from './socketmap.js';
import { check } from './errors.js';
import { declareBuiltInPredicates } from './dispatcher.js';
import { FileDispatcher } from './file.js';

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);
// Looked up by name: a JavaScript caller may pass a name that is not a signal.
const signalNumbers = new Map<string, number>(Object.entries(constants.signals));

/**
 * Calls a function from inside the loop when the process receives one of the given signals:
 * the way to stop a {@link loopSync} on SIGINT or SIGTERM, which Node's `process.on('SIGINT')`
 * cannot do while loopSync holds the thread. Python's `signal.set_wakeup_fd()` with a
 * dispatcher on the pipe.
 *
 * ```ts
 * new SignalDispatcher(['SIGINT', 'SIGTERM'], () => closeAll());
 * loopSync(); // returns once a signal has closed every dispatcher
 * ```
 *
 * From the first SignalDispatcher for a signal on, that signal no longer ends the process by
 * default: the function decides (handlers installed with `process.on` still run, under
 * {@link loop}). The wake-up pipe is one per process, so make one SignalDispatcher for all the
 * signals you want. It is a dispatcher like any other: it keeps the loop running until it is
 * closed ({@link closeAll} closes it too).
 */
export class SignalDispatcher extends FileDispatcher {
  readonly #onSignal: (signal: NodeJS.Signals) => void;

  /**
   * Routes each of `signals` (names such as `'SIGINT'`) to the wake-up pipe and watches it in
   * `map` (default: the global {@link socketMap}); `onSignal` gets each signal's name as it
   * arrives. Throws `TypeError` for an unknown name or an empty list.
   */
  constructor(signals: NodeJS.Signals[], onSignal: (signal: NodeJS.Signals) => void, map?: SocketMap) {
    let fd = -1;
    for (const name of signals) {
      const number = signalNumbers.get(name);
      if (number === undefined) throw new TypeError(`unknown signal ${name}`);
      fd = check(native.signalWakeupFd(number), 'sigaction');
    }
    if (fd < 0) throw new TypeError('SignalDispatcher needs at least one signal');
    super(fd, map);
    this.#onSignal = onSignal;
  }

  /** Never: the pipe is only read. */
  override writable(): boolean {
    return false;
  }

  /** Reads the signal numbers the pipe holds and calls `onSignal` with each one's name. */
  override handleRead(): void {
    for (const byte of this.recv(64)) {
      const name = signalNames.get(byte);
      if (name !== undefined) this.#onSignal(name);
    }
  }

  /** The pipe closed: stop watching it. */
  override handleClose(): void {
    this.close();
  }
}

// readable() is Dispatcher's and writable() is constant: the loop need not ask an idle
// signal pipe every iteration (hasBuiltInPredicates).
declareBuiltInPredicates(SignalDispatcher.prototype);
