// Shared test helpers: the backend x family matrix, child processes, fd counting.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { AF_INET, AF_INET6, AF_UNIX, type Address, Socket, availableBackends } from 'asyncore';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DIST = join(ROOT, 'dist');

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

/** Runs a command to completion; resolves with its exit code, stdout and stderr. */
export function run(
  command: string,
  args: string[],
  options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
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
