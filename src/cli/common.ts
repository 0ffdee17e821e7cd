// What every command-line tool of the package shares: flag checks with the same messages
// and exit codes, and running the loop until SIGINT/SIGTERM in either mode.
import { type LoopOptions, availableBackends, closeAll, loop, loopSync } from '../index.js';
import { SignalDispatcher } from '../signals.js';

export type Mode = 'sync' | 'thread';

export class Cli {
  constructor(
    readonly name: string,
    readonly usage: string,
  ) {}

  /** A bad flag: the message and the usage on stderr, exit code 2. */
  usageError(message: string): never {
    process.stderr.write(`${this.name}: ${message}\n\n${this.usage}\n`);
    process.exit(2);
  }

  /** Any other failure: one line on stderr, exit code 1 (or `code`). */
  fail(message: string, code = 1): never {
    process.stderr.write(`${this.name}: ${message}\n`);
    process.exit(code);
  }

  port(text: string | undefined, flag: string, { allowZero = true } = {}): number {
    if (text === undefined) this.usageError(`${flag} is required`);
    const port = Number(text);
    if (!/^\d+$/.test(text) || port > 65535 || (!allowZero && port === 0)) {
      this.usageError(`${flag} must be ${allowZero ? 0 : 1}-65535, not ${text}`);
    }
    return port;
  }

  backend(text: string): NonNullable<LoopOptions['backend']> {
    const backends = ['auto', ...availableBackends()];
    if (!backends.includes(text)) {
      this.usageError(`--backend ${text} is not available here (available: ${backends.join(', ')})`);
    }
    return text as NonNullable<LoopOptions['backend']>;
  }

  mode(text: string): Mode {
    if (text !== 'sync' && text !== 'thread') this.usageError(`--mode must be sync or thread, not ${text}`);
    return text;
  }

  /**
   * Prints `announce` (the "listening on ..." line), then runs the loop over the global map
   * until it is empty; SIGINT and SIGTERM close every dispatcher, which ends it. Under
   * loopSync Node's signal listeners cannot run, so a dispatcher on a signal wake-up pipe
   * does it; under loop() both ways work. The signals are caught before the line is
   * printed, so whoever waits for it may signal at once.
   */
  serve(mode: Mode, options: LoopOptions, announce: string): void {
    const stop = (): void => closeAll();
    new SignalDispatcher(['SIGINT', 'SIGTERM'], stop);
    if (mode === 'thread') {
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    }
    process.stdout.write(`${announce}\n`);
    if (mode === 'sync') {
      loopSync(options);
      return;
    }
    loop(options).then(
      () => process.removeListener('SIGINT', stop).removeListener('SIGTERM', stop),
      (err: unknown) => {
        process.stderr.write(`${this.name}: ${String(err)}\n`);
        process.exitCode = 1;
      },
    );
  }

  /** The backend 'auto' stands for here, for the "listening on" line. */
  static backendName(backend: string): string {
    return backend === 'auto' ? (availableBackends()[0] ?? 'select') : backend;
  }
}
