// What every command-line tool of the package shares: flag checks with the same messages
// and exit codes, running the loop until SIGINT/SIGTERM in either mode, the --trace lines,
// and printing addresses, errors and peer-supplied text.
import { type ParseArgsConfig, parseArgs } from 'node:util';

import {
  AF_INET,
  AF_INET6,
  type Address,
  type Dispatcher,
  type IterationTrace,
  type LoopOptions,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLPRI,
  SOL_SOCKET,
  SO_REUSEPORT,
  SignalDispatcher,
  Socket,
  SocketError,
  type SocketMap,
  availableBackends,
  closeAll,
  loop,
  loopSync,
  socketMap,
} from '../index.js';

export type Mode = 'sync' | 'thread';

/**
 * The flags every tool shares: --backend, --mode, --trace, -v and --help. Spread into a tool's
 * options. -v is each tool's "say more": what it says depends on the tool, and with --trace it
 * also names each fd's dispatcher.
 */
export const LOOP_FLAGS = {
  backend: { type: 'string', default: 'auto' },
  mode: { type: 'string', default: 'sync' },
  trace: { type: 'boolean', default: false },
  verbose: { type: 'boolean', short: 'v', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The usage lines of the shared flags, for the end of each tool's usage text. */
export const LOOP_USAGE = `  --backend NAME    select | poll | epoll | auto (default auto)
  --mode MODE       sync (loopSync on this thread) | thread (loop() on a native thread)
                    (default sync)
  --trace           print every loop iteration to stderr (with -v: each fd's dispatcher too)
  -h, --help        show this help`;

// C0 controls, DEL and C1 controls (0x9b is a one-byte CSI to some terminals).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

/**
 * Text a peer chose (a header, a reason phrase, a UNIX socket path), made safe to print: every
 * control character becomes `\xNN`, so a peer cannot move the cursor, recolour or retitle the
 * terminal that reads the output.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** HOST:PORT as people write it: an IPv6 host in brackets, a UNIX path as is; controls escaped. */
export function formatAddress(addr: Address): string {
  if (typeof addr === 'string') return escapeControls(addr);
  return addr[0].includes(':') ? `[${addr[0]}]:${addr[1]}` : `${addr[0]}:${addr[1]}`;
}

/**
 * The address a listening dispatcher is bound to as HOST:PORT, the host unbracketed even for
 * IPv6: the "listening on HOST:PORT" line each server prints, which scripts read.
 */
export function listeningAddress(server: Dispatcher): string {
  const name = server.socket instanceof Socket ? server.socket.getsockname() : '?';
  return typeof name === 'string' ? name : `${name[0]}:${name[1]}`;
}

/** The port a listening dispatcher is bound to (0 for a UNIX socket): what a pool worker reports. */
export function boundPort(server: Dispatcher): number {
  const name = server.socket instanceof Socket ? server.socket.getsockname() : '';
  return typeof name === 'string' ? 0 : name[1];
}

/**
 * What every server tool's listener does: a TCP socket of the host's family, SO_REUSEADDR, and
 * SO_REUSEPORT when it is one of several workers' listeners on the same port (the kernel then
 * spreads connections over them), bound and listening with a backlog of 1024.
 */
export function listenTcp(server: Dispatcher, host: string, port: number, reusePort: boolean): void {
  server.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
  server.setReuseAddr();
  if (reusePort && server.socket instanceof Socket) server.socket.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1);
  server.bind([host, port]);
  server.listen(1024);
}

/**
 * One error for a one-line message: a failed system call by its errno name alone (the line
 * around it already says what was being done, to what), anything else by its message.
 */
export function describeError(err: unknown): string {
  if (err instanceof SocketError) return err.code;
  return err instanceof Error ? err.message : String(err);
}

const EVENT_NAMES: readonly (readonly [number, string])[] = [
  [POLLIN, 'IN'],
  [POLLPRI, 'PRI'],
  [POLLOUT, 'OUT'],
  [POLLERR, 'ERR'],
  [POLLHUP, 'HUP'],
  [POLLNVAL, 'NVAL'],
];

/** `POLLIN | POLLHUP` as `IN|HUP`. */
export function eventNames(events: number): string {
  return EVENT_NAMES.filter(([bit]) => events & bit)
    .map(([, name]) => name)
    .join('|');
}

/** How trace lines look: colours (a terminal only) and each fd's dispatcher (-v). */
export interface TraceStyle {
  colour: boolean;
  verbose: boolean;
  /** Where the dispatchers are looked up for -v; the global map by default. */
  map?: SocketMap;
}

const SGR = { bold: '\x1b[1m', dim: '\x1b[2m', red: '\x1b[31m', green: '\x1b[32m', cyan: '\x1b[36m' };
const RESET = '\x1b[0m';

/**
 * Whether to colour what goes to `stream`: only a terminal, and never when NO_COLOR is set to
 * anything but the empty string (no-color.org).
 */
export function wantsColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const noColour = env['NO_COLOR'];
  return stream.isTTY === true && (noColour === undefined || noColour === '');
}

/**
 * One loop iteration as text, the line --trace prints:
 *
 *     #3 epoll read=[18,20] write=[] except=[18,20] waited 812.402 ms -> ready 20:IN (dispatch 0.051 ms)
 *
 * the fds asked for reading, writing and exceptional conditions, what the kernel answered
 * (each ready fd with its POLL* events), and the time spent waiting and then dispatching. With
 * `verbose`, one indented line per fd follows, naming its dispatcher (its toString()) as the
 * map holds it after the iteration: an fd whose dispatcher closed during it shows `closed`.
 * Every line ends with a newline.
 */
export function formatTrace(it: IterationTrace, style: TraceStyle): string {
  const paint = (sgr: string, text: string): string => (style.colour ? `${sgr}${text}${RESET}` : text);
  const ready = it.ready
    .map(({ fd, events }) => {
      const text = `${fd}:${eventNames(events)}`;
      return paint(events & (POLLERR | POLLHUP | POLLNVAL) ? SGR.red : SGR.green, text);
    })
    .join(' ');
  let line =
    `${paint(SGR.bold, `#${it.iteration}`)} ${paint(SGR.cyan, it.backend)} read=[${it.read.join(',')}] ` +
    `write=[${it.write.join(',')}] except=[${it.except.join(',')}] ` +
    `waited ${it.waitMs.toFixed(3)} ms -> ready ${ready || '-'} ` +
    `${paint(SGR.dim, `(dispatch ${it.dispatchMs.toFixed(3)} ms)`)}\n`;
  if (style.verbose) {
    const map = style.map ?? socketMap;
    const fds = new Set([...it.read, ...it.write, ...it.except, ...it.ready.map((r) => r.fd)]);
    for (const fd of [...fds].sort((a, b) => a - b)) {
      const dispatcher = map.get(fd);
      line += `    ${fd} ${paint(SGR.dim, dispatcher === undefined ? 'closed' : escapeControls(String(dispatcher)))}\n`;
    }
  }
  return line;
}

/** The trace option that prints each iteration to stderr, coloured only on a terminal. */
export function traceToStderr(verbose: boolean): (it: IterationTrace) => void {
  const style: TraceStyle = { colour: wantsColour(process.stderr), verbose };
  return (it) => {
    process.stderr.write(formatTrace(it, style));
  };
}

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

  /**
   * The shared flags (LOOP_FLAGS) checked and turned into the loop's mode and options: the
   * backend, 30 s waits and, with --trace, the trace lines on stderr.
   */
  loopFlags(values: { backend: string; mode: string; trace: boolean; verbose: boolean }): {
    mode: Mode;
    options: LoopOptions & { backend: NonNullable<LoopOptions['backend']> };
  } {
    const backend = this.backend(values.backend);
    const mode = this.mode(values.mode);
    return {
      mode,
      options: { backend, timeout: 30, ...(values.trace ? { trace: traceToStderr(values.verbose) } : {}) },
    };
  }

  /**
   * A server made by `create`, or the failure as "cannot listen on HOST:PORT: bind EADDRINUSE",
   * exit code 1. The call is named: it may be socket(), bind() or listen().
   */
  listen<T extends Dispatcher>(host: string, port: number, create: () => T): T {
    try {
      return create();
    } catch (err) {
      const why = err instanceof SocketError ? `${err.syscall} ${err.code}` : describeError(err);
      this.fail(`cannot listen on ${formatAddress([host, port])}: ${why}`);
    }
  }

  /** The line a server prints once it listens, which scripts wait for: "listening on HOST:PORT (...)". */
  static listening(server: Dispatcher, backend: string, mode: Mode, ...more: string[]): string {
    const details = [`backend ${Cli.backendName(backend)}`, `mode ${mode}`, ...more].join(', ');
    return `listening on ${listeningAddress(server)} (${details})`;
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
