// What every command-line tool of the package shares: flag checks with the same messages
// and exit codes, and running the loop until SIGINT/SIGTERM in either mode.
import { type ParseArgsConfig, parseArgs } from 'node:util';

import { type LoopOptions, availableBackends, closeAll, loop, loopSync } from '../index.js';
import { SignalDispatcher } from '../signals.js';

export type Mode = 'sync' | 'thread';

/** The flags every tool shares: --backend, --mode and --help. Spread into a tool's options. */
export const LOOP_FLAGS = {
  backend: { type: 'string', default: 'auto' },
  mode: { type: 'string', default: 'sync' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export class Cli {
  constructor(
    readonly name: string,
    readonly usage: string,
  ) {}

  /**
   * parseArgs() with the tools' conventions: a bad flag is a usage error (exit code 2), and
   * --help prints the usage and returns null.
   */
  parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> | null {
    let parsed: ReturnType<typeof parseArgs<T>>;
    try {
      parsed = parseArgs(config);
    } catch (err) {
      this.usageError(err instanceof Error ? err.message : String(err));
    }
    if ((parsed.values as { help?: unknown }).help === true) {
      process.stdout.write(`${this.usage}\n`);
      return null;
    }
    return parsed;
  }

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

  #onSignal: ((signal: NodeJS.Signals) => void) | null = null;

  /**
   * Catches SIGINT and SIGTERM from now on and calls `onSignal` (by default: close every
   * dispatcher, which ends the loop). Under loopSync Node's signal listeners cannot run, so a
   * dispatcher on a signal wake-up pipe does it; under loop() both ways work. run() calls it;
   * a tool that connects before run() calls it first, so that a signal arriving in between
   * is handled instead of killing the process.
   */
  catchSignals(mode: Mode, onSignal: (signal: NodeJS.Signals) => void = (): void => closeAll()): void {
    if (this.#onSignal !== null) return;
    this.#onSignal = onSignal;
    new SignalDispatcher(['SIGINT', 'SIGTERM'], onSignal);
    if (mode === 'thread') {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
  }

  /**
   * Runs the loop over the global map until it is empty, with the signals caught (see
   * catchSignals). The signals are caught before `announce` (a server's "listening on" line)
   * is printed, so whoever waits for that line may signal at once. `onDone` runs when the
   * loop has ended.
   */
  run(
    mode: Mode,
    options: LoopOptions,
    hooks: { announce?: string; onSignal?: (signal: NodeJS.Signals) => void; onDone?: () => void } = {},
  ): void {
    this.catchSignals(mode, hooks.onSignal);
    const onSignal = this.#onSignal as (signal: NodeJS.Signals) => void;
    if (hooks.announce !== undefined) process.stdout.write(`${hooks.announce}\n`);
    if (mode === 'sync') {
      loopSync(options);
      hooks.onDone?.();
      return;
    }
    loop(options).then(
      () => {
        process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal);
        hooks.onDone?.();
      },
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
