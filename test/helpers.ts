// What the vitest tests share: the backend x family matrix, running a loop in either mode,
// the classic echo pair, non-blocking socket helpers, child processes (CLIs, and fixtures that
// report events as JSON lines), and what /proc says about a process (fds, memory, CPU time,
// signals). The child scripts cannot import TypeScript: theirs is test/fixtures/echo-kit.mjs.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  type Address,
  Dispatcher,
  DispatcherWithSend,
  type LoopOptions,
  type ScheduledCall,
  Socket,
  SocketError,
  type SocketMap,
  availableBackends,
  callLater,
  closeAll,
  loop,
  loopSync,
} from 'asyncore';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DIST = join(ROOT, 'dist');
export const FAULTS = join(ROOT, 'test', 'fixtures', 'faults');
/** test/fixtures/half_close_client.py: per SIZE a connection that sends, half-closes, reads to EOF. */
export const HALF_CLOSE_CLIENT = join(ROOT, 'test', 'fixtures', 'half_close_client.py');
/** test/fixtures/half_close_peers.py: servers that read to EOF (or a request head) before they answer. */
export const HALF_CLOSE_PEERS = join(ROOT, 'test', 'fixtures', 'half_close_peers.py');

/** Every backend compiled in here ('select', 'poll', 'epoll' on Linux). */
export const BACKENDS = availableBackends() as ('select' | 'poll' | 'epoll')[];

/**
 * The most scalable backend compiled in: 'epoll' on Linux, 'poll' in a build without it (the
 * portable fallbacks forced, or a platform without epoll).
 */
export const BEST_BACKEND = BACKENDS[0] ?? 'poll';

/** Both loops: loopSync on this thread and loop() on the native thread. */
export const MODES = ['sync', 'thread'] as const;
export type Mode = (typeof MODES)[number];

/**
 * Whether this run is under AddressSanitizer (.ci/sanitize preloads libasan): everything runs
 * two to five times slower, so bounds meant to catch a hang, not to time the code, are given
 * SLOW times more room.
 */
export const UNDER_ASAN = (process.env['LD_PRELOAD'] ?? '').includes('libasan');
export const SLOW = UNDER_ASAN ? 4 : 1;

/** Runs the loop in `mode`; settles when loopSync() returns (a throw becomes a rejection) or loop()'s promise does. */
export async function runLoop(mode: Mode, options: LoopOptions): Promise<void> {
  if (mode === 'thread') return loop(options);
  loopSync(options);
}

function hasIpv6Loopback(): boolean {
  try {
    const s = new Socket(AF_INET6);
    try {
      s.bind(['::1', 0]);
      return true;
    } finally {
      s.close();
    }
  } catch {
    return false;
  }
}

let unixCounter = 0;

/** A fresh UNIX socket path in the temp dir. */
export function unixPath(): string {
  unixCounter++;
  return join(tmpdir(), `asyncore-${process.pid}-${unixCounter}-${Date.now()}.sock`);
}

export interface Family {
  name: string;
  family: number;
  /** An address to bind a listener to (a free port / a fresh path). */
  any(): Address;
}

/** IPv4, IPv6 (when this host has ::1) and UNIX. */
export const FAMILIES: Family[] = [
  { name: 'IPv4', family: AF_INET, any: () => ['127.0.0.1', 0] },
  ...(hasIpv6Loopback() ? [{ name: 'IPv6', family: AF_INET6, any: (): Address => ['::1', 0] }] : []),
  { name: 'UNIX', family: AF_UNIX, any: unixPath },
];

/** The fds this process has open now. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Echoes what it reads, closes when its peer does (Python's classic handler). */
export class EchoHandler extends DispatcherWithSend {
  override handleRead(): void {
    const data = this.recv(8192);
    if (data.length > 0) this.send(data);
  }

  override handleClose(): void {
    this.close();
  }
}

/** A listener on 127.0.0.1 that echoes on every accepted connection (Python's classic pair). */
export class EchoServer extends Dispatcher {
  constructor(map: SocketMap) {
    super(null, map);
    this.createSocket(AF_INET);
    this.setReuseAddr();
    this.bind(['127.0.0.1', 0]);
    this.listen(128);
  }

  get port(): number {
    const sock = this.socket;
    if (!(sock instanceof Socket)) throw new Error(`${String(this)} has no socket`);
    const name = sock.getsockname();
    if (typeof name === 'string') throw new Error(`${String(this)} is not an inet socket`);
    return name[1];
  }

  override handleAccepted(sock: Socket): void {
    this.newHandler(sock);
  }

  /** The handler for an accepted connection: an EchoHandler unless a subclass says otherwise. */
  protected newHandler(sock: Socket): Dispatcher {
    return new EchoHandler(sock, this._map);
  }
}

const testMaps: SocketMap[] = [];
const backstops: ScheduledCall[] = [];

/**
 * A fresh map for one test; closeTestMaps() (in afterEach) closes whatever the test left in it,
 * which also ends a loop() still running on it. With `backstopSeconds`, a timer in the map
 * closes it then, so a broken loop ends (and the test fails on its assertions) instead of
 * hanging.
 */
export function testMap(backstopSeconds?: number): SocketMap {
  const map: SocketMap = new Map();
  testMaps.push(map);
  if (backstopSeconds !== undefined) backstops.push(callLater(backstopSeconds, () => closeAll(map, true), map));
  return map;
}

/** Cancels the backstops and closes every map testMap() made. */
export function closeTestMaps(): void {
  for (const timer of backstops.splice(0)) timer.cancel();
  for (const map of testMaps.splice(0)) closeAll(map, true);
}

/** The error `fn` throws; fails the test if it throws none. */
export function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, none was thrown');
}

/** Spawns `node dist/cli/<name>.js args` and resolves once it printed its "listening on H:P" line. */
export async function startCli(
  name: string,
  args: string[],
): Promise<{ child: ChildProcess; host: string; port: number; output: () => string }> {
  const child = spawn(process.execPath, [join(DIST, 'cli', `${name}.js`), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}${err}`)), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (.*):(\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, host: m[1] as string, port: Number(m[2]), output: () => out + err });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${String(code)}: ${out}${err}`));
    });
  });
}

/** Resolves once `condition()` holds, checking every 20 ms; rejects after `ms`. */
export async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves with the exit code (or signal name) of a child, killing it after `ms`. */
export function waitExit(child: ChildProcess, ms = 10_000): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode ?? child.signalCode ?? -1);
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? -1);
    });
  });
}

/**
 * SIGKILLs every child of `children` still running and waits for each to exit, emptying the
 * list: the clean-up, in an afterEach or afterAll, of what a failed test left running.
 */
export async function killAll(children: ChildProcess[]): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await waitExit(child);
  }
}

/** What run() resolves with: the exit code (or signal name), stdout and stderr. */
export interface RunResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion (killing it after `timeoutMs`, a safety net). `children`, when
 * given, receives the child, so that an `afterEach` can kill it if the test ends first.
 */
export function run(
  command: string,
  args: string[],
  options: {
    input?: string;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    children?: ChildProcess[];
  } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    options.children?.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    // 'close', not 'exit': 'exit' may come before the last of stdout and stderr was read.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    });
    // A child may exit before reading its input: that EPIPE is not the test's failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** A port nobody listens on right now: the kernel picks it, and we let it go. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = netConnect(port, '127.0.0.1');
    sock.on('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread for `ms` milliseconds (the sockets under test are non-blocking). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Calls `attempt` until it stops throwing EAGAIN, for at most `ms` milliseconds: loopback
 * peers need a moment, and a hung test is worse than a failed one.
 */
export function whenReady<T>(attempt: () => T, ms = 2000): T {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return attempt();
    } catch (err) {
      const wouldBlock = err instanceof SocketError && err.code === 'EAGAIN';
      if (!wouldBlock || Date.now() > deadline) throw err;
      sleepSync(1);
    }
  }
}

/** Receives exactly `n` bytes from a non-blocking reader (or fails after `ms`). */
export function recvExactly(reader: { recv(n: number): Buffer }, n: number, ms = 2000): Buffer {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const chunk = whenReady(() => reader.recv(n - got), ms);
    if (chunk.length === 0) break;
    parts.push(chunk);
    got += chunk.length;
  }
  return Buffer.concat(parts);
}

/**
 * Calls a method with arguments its TypeScript signature forbids, as plain JavaScript
 * callers can: the API must answer with TypeError/RangeError, not a crash.
 */
export function callUntyped(target: object, method: string, ...args: unknown[]): unknown {
  const fn: unknown = Reflect.get(target, method);
  if (typeof fn !== 'function') throw new Error(`no method ${method}`);
  return Reflect.apply(fn, target, args);
}

/** Builds an instance with constructor arguments its signature forbids. */
export function constructUntyped(ctor: new (...args: never[]) => object, ...args: unknown[]): object {
  const instance: unknown = Reflect.construct(ctor, args);
  if (!(instance instanceof ctor)) throw new Error(`${ctor.name} did not construct an instance`);
  return instance;
}

/** Removes the socket file of an AF_UNIX address; IP addresses need nothing. */
export function removeUnixPath(address: Address | null | undefined): void {
  if (typeof address === 'string' && address !== '') rmSync(address, { force: true });
}

export type ChildEvent = Record<string, unknown>;

/** A field of an event that must be a number. */
export function numberField(event: ChildEvent, key: string): number {
  const value = event[key];
  if (typeof value !== 'number') throw new Error(`event ${JSON.stringify(event)} has no number ${key}`);
  return value;
}

interface Waiter {
  name: string;
  resolve: (event: ChildEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A child that prints one JSON object per line, each with an "event" name. next(name) resolves
 * with the first such event not taken yet (earlier ones included), or rejects after a time
 * limit or when the child exits first, with everything it printed.
 */
export class EventChild {
  readonly process: ChildProcess;
  readonly #events: ChildEvent[] = [];
  readonly #waiters: Waiter[] = [];
  #stdout = '';
  #stderr = '';
  #pending = '';
  #exit: Promise<number | string>;

  constructor(command: string, args: string[]) {
    this.process = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.process.stdin?.on('error', () => undefined);
    this.process.stdout?.on('data', (chunk: Buffer) => this.#onStdout(chunk.toString()));
    this.process.stderr?.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString()));
    this.#exit = new Promise((resolve) => {
      this.process.on('close', (code, signal) => {
        for (const waiter of this.#waiters.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`child exited before "${waiter.name}": ${this.output()}`));
        }
        resolve(code ?? signal ?? -1);
      });
    });
  }

  /** Everything the child printed so far, for failure messages. */
  output(): string {
    return `${this.#stdout}${this.#stderr}`;
  }

  get stderr(): string {
    return this.#stderr;
  }

  next(name: string, ms = 10_000): Promise<ChildEvent> {
    const index = this.#events.findIndex((event) => event['event'] === name);
    if (index >= 0) return Promise.resolve(this.#events.splice(index, 1)[0] as ChildEvent);
    if (this.process.exitCode !== null || this.process.signalCode !== null) {
      return Promise.reject(new Error(`child has exited, no "${name}": ${this.output()}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`no "${name}" within ${ms} ms: ${this.output()}`));
      }, ms);
      const waiter: Waiter = { name, resolve, reject, timer };
      this.#waiters.push(waiter);
    });
  }

  /** Closes the child's stdin (the fixtures end their loop on it). */
  endInput(): void {
    this.process.stdin?.end();
  }

  writeLine(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  /** The exit code (or signal name); SIGKILL after `ms`. */
  exited(ms = 10_000): Promise<number | string> {
    const timer = setTimeout(() => this.kill(), ms);
    return this.#exit.finally(() => clearTimeout(timer));
  }

  /** SIGKILL by PID, if it still runs. */
  kill(): void {
    const { pid, exitCode, signalCode } = this.process;
    if (pid !== undefined && exitCode === null && signalCode === null) process.kill(pid, 'SIGKILL');
  }

  #onStdout(text: string): void {
    this.#stdout += text;
    this.#pending += text;
    let newline: number;
    while ((newline = this.#pending.indexOf('\n')) >= 0) {
      const line = this.#pending.slice(0, newline).trim();
      this.#pending = this.#pending.slice(newline + 1);
      if (line.startsWith('{')) this.#deliver(JSON.parse(line) as ChildEvent);
    }
  }

  #deliver(event: ChildEvent): void {
    const index = this.#waiters.findIndex((waiter) => waiter.name === event['event']);
    if (index < 0) {
      this.#events.push(event);
      return;
    }
    const [waiter] = this.#waiters.splice(index, 1);
    if (waiter === undefined) return;
    clearTimeout(waiter.timer);
    waiter.resolve(event);
  }
}

/** A field of /proc/PID/status, e.g. VmRSS (in kB). */
function statusField(pid: number, field: string): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith(`${field}:`));
  if (line === undefined) throw new Error(`/proc/${pid}/status has no ${field}`);
  return line.slice(field.length + 1).trim();
}

/** Resident memory of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  return Number.parseInt(statusField(pid, 'VmRSS'), 10) / 1024;
}

/** CPU time (user + system) a process has used, in clock ticks (utime + stime of /proc/PID/stat). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm) ": state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Whether a signal is pending for the process as a whole (ShdPnd) or one of its threads (SigPnd). */
export function signalPending(pid: number, signal: number): boolean {
  const bit = 1n << BigInt(signal - 1);
  const shared = BigInt(`0x${statusField(pid, 'ShdPnd')}`);
  const own = BigInt(`0x${statusField(pid, 'SigPnd')}`);
  return ((shared | own) & bit) !== 0n;
}
