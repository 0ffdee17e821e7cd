// SignalDispatcher: ends a loopSync() on SIGINT/SIGTERM, as Python's signal.set_wakeup_fd().
//
// loopSync() holds the JS thread, so process.on('SIGINT') listeners only run after it
// returns. The native side also writes each signal's number to a pipe; this dispatcher
// watches the pipe and calls onSignal from inside the loop. Under loop() Node's own
// listeners work as usual, and this dispatcher works there too.
import { constants } from 'node:os';

import { native } from './binding.js';
import type { SocketMap } from './dispatcher.js';
import { check } from './errors.js';
import { FileDispatcher } from './file.js';

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);
// Looked up by name: a JavaScript caller may pass a name that is not a signal.
const signalNumbers = new Map<string, number>(Object.entries(constants.signals));

export class SignalDispatcher extends FileDispatcher {
  readonly #onSignal: (signal: NodeJS.Signals) => void;

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

  override writable(): boolean {
    return false;
  }

  override handleRead(): void {
    for (const byte of this.recv(64)) {
      const name = signalNames.get(byte);
      if (name !== undefined) this.#onSignal(name);
    }
  }

  override handleClose(): void {
    this.close();
  }
}
