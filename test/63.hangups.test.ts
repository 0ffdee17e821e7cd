// Hang-ups lose no data: when the kernel reports POLLHUP/POLLERR with input still queued (a
// FIFO whose writer closed, a TCP peer that sent and closed while we had shut down writing, an
// AF_UNIX peer gone), the dispatcher keeps getting handleRead() until it has read everything,
// then exactly one handleClose(). A handler that reads nothing on a hang-up is closed at once
// (as Python does; nothing spins), and one that is not reading when the hang-up comes
// (back-pressure) neither loses its input nor spins.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  AF_INET,
  Dispatcher,
  FileDispatcher,
  type IterationTrace,
  POLLHUP,
  POLLIN,
  SHUT_WR,
  type ScheduledCall,
  type Socket,
  type SocketMap,
  callLater,
  socketpair,
} from 'asyncore';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { BACKENDS, MODES, closeTestMaps, runLoop, testMap, waitExit } from './helpers.js';

/** Deterministic bytes that show any loss or reordering. */
function pattern(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + 3) % 251;
  return out;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads `chunk` bytes per event and keeps them; counts its reads and closes. */
class Collector extends Dispatcher {
  readonly chunks: Buffer[] = [];
  reads = 0;
  closes = 0;
  readonly #chunk: number;

  constructor(sock: Socket | null, map: SocketMap, chunk: number) {
    super(sock, map);
    this.#chunk = chunk;
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  override writable(): boolean {
    return false;
  }

  override handleRead(): void {
    this.reads++;
    const data = this.recv(this.#chunk);
    if (data.length > 0) this.chunks.push(data);
  }

  override handleClose(): void {
    this.closes++;
    this.close();
  }
}

/** A FileDispatcher that reads `chunk` bytes per event (the FIFO case). */
class FileCollector extends FileDispatcher {
  readonly chunks: Buffer[] = [];
  reads = 0;
  closes = 0;
  readonly #chunk: number;

  constructor(fd: number, map: SocketMap, chunk: number) {
    super(fd, map);
    this.#chunk = chunk;
  }

  override writable(): boolean {
    return false;
  }

  override handleRead(): void {
    this.reads++;
    if (this.#chunk === 0) return;
    const data = this.recv(this.#chunk);
    if (data.length > 0) this.chunks.push(data);
  }

  override handleClose(): void {
    this.closes++;
    this.close();
  }
}

let dir: string;
/** Timers a test started: cancelled after it, whatever it left running. */
const timers: ScheduledCall[] = [];
const children: ChildProcess[] = [];

/** A map of this test's, closed after it at the latest 20 s in, so a broken loop cannot hang. */
function newMap(): SocketMap {
  return testMap(20);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'asyncore-hup-'));
});

afterEach(() => {
  for (const timer of timers.splice(0)) timer.cancel();
  closeTestMaps();
  for (const child of children.splice(0)) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A FIFO holding `bytes` whose writer has closed; returns a non-blocking read fd (caller closes). */
function filledFifo(bytes: Buffer): number {
  const path = join(dir, 'fifo');
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  expect(writeSync(writer, bytes)).toBe(bytes.length);
  closeSync(writer);
  return reader;
}

/** A trace that remembers whether the kernel reported POLLIN|POLLHUP, and counts iterations. */
function hangUpTrace(): { trace: (it: IterationTrace) => void; sawInHup: () => boolean; iterations: () => number } {
  let saw = false;
  let n = 0;
  return {
    trace: (it) => {
      n++;
      for (const { events } of it.ready) if ((events & (POLLIN | POLLHUP)) === (POLLIN | POLLHUP)) saw = true;
    },
    sawInHup: () => saw,
    iterations: () => n,
  };
}

const POLL_LIKE = BACKENDS.filter((name) => name !== 'select');

describe.each(BACKENDS)('hang-ups lose no data (%s)', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    it('a FIFO holding 5,007 bytes read 7 at a time: every byte in order, then one handleClose', async () => {
      const map = newMap();
      const bytes = pattern(5007);
      const fd = filledFifo(bytes);
      const reader = new FileCollector(fd, map, 7);
      closeSync(fd);
      const seen = hangUpTrace();
      await runLoop(mode, { map, backend, timeout: 5, trace: seen.trace });
      expect(Buffer.concat(reader.chunks).equals(bytes)).toBe(true);
      expect(reader.closes).toBe(1);
      if (backend !== 'select') expect(seen.sawInHup()).toBe(true);
    });

    it('TCP: 1 MiB sent by a peer that then closes, after we shut down writing: every byte, one handleClose', async () => {
      const map = newMap();
      const size = 1 << 20;
      const collectors: Collector[] = [];
      class Listener extends Dispatcher {
        override handleAccepted(sock: Socket): void {
          sock.shutdown(SHUT_WR);
          collectors.push(new Collector(sock, map, 4096));
          this.close();
        }
      }
      const listener = new Listener(null, map);
      listener.createSocket(AF_INET);
      listener.bind(['127.0.0.1', 0]);
      listener.listen(1);
      const [, port] = (listener.socket as Socket).getsockname() as [string, number];
      const peer = spawn(
        'python3',
        [
          '-c',
          [
            'import socket, sys',
            'n = int(sys.argv[2])',
            'data = bytes((i * 7 + 3) % 251 for i in range(n))',
            "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
            's.sendall(data)',
            's.close()',
          ].join('\n'),
          String(port),
          String(size),
        ],
        { stdio: 'ignore' },
      );
      children.push(peer);
      const seen = hangUpTrace();
      await runLoop(mode, { map, backend, timeout: 5, trace: seen.trace });
      expect(await waitExit(peer)).toBe(0);
      expect(collectors).toHaveLength(1);
      const [collector] = collectors as [Collector];
      expect(collector.data.length).toBe(size);
      expect(sha256(collector.data)).toBe(sha256(pattern(size)));
      expect(collector.closes).toBe(1);
      if (backend !== 'select') expect(seen.sawInHup()).toBe(true);
    });

    it('AF_UNIX: the peer closes with 60,000 bytes queued: all of them arrive, then one handleClose', async () => {
      const map = newMap();
      const bytes = pattern(60_000);
      const [peer, ours] = socketpair();
      expect(peer.send(bytes)).toBe(bytes.length);
      peer.close();
      const collector = new Collector(ours, map, 1000);
      const seen = hangUpTrace();
      await runLoop(mode, { map, backend, timeout: 5, trace: seen.trace });
      expect(collector.data.equals(bytes)).toBe(true);
      expect(collector.closes).toBe(1);
      if (backend !== 'select') expect(seen.sawInHup()).toBe(true);
    });
  });
});

// select() has no hang-up: a handler that never reads spins there, as in Python.
describe.each(POLL_LIKE)('a hang-up the dispatcher does not read (%s)', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    it('a handleRead that reads nothing gets handleClose at once', async () => {
      const map = newMap();
      const fd = filledFifo(pattern(5007));
      const reader = new FileCollector(fd, map, 0);
      closeSync(fd);
      const seen = hangUpTrace();
      await runLoop(mode, { map, backend, timeout: 5, trace: seen.trace });
      expect(reader.reads).toBe(1);
      expect(reader.closes).toBe(1);
      expect(seen.iterations()).toBe(1);
    });

    it('a dispatcher not reading when its peer hangs up keeps its input, and nothing spins', async () => {
      const map = newMap();
      const bytes = pattern(50_000);
      const [peer, ours] = socketpair();
      expect(peer.send(bytes)).toBe(bytes.length);
      peer.close();
      let reading = false;
      class Paused extends Collector {
        override readable(): boolean {
          return reading;
        }
      }
      const collector = new Paused(ours, map, 1000);
      const seen = hangUpTrace();
      let iterationsWhilePaused = -1;
      timers.push(
        callLater(
          0.2,
          () => {
            iterationsWhilePaused = seen.iterations();
            reading = true;
          },
          map,
        ),
      );
      await runLoop(mode, { map, backend, timeout: 5, trace: seen.trace });
      expect(collector.data.equals(bytes)).toBe(true);
      expect(collector.closes).toBe(1);
      // A spinning loop would run thousands of iterations in 200 ms; a parked fd leaves the
      // wait to the timer.
      expect(iterationsWhilePaused).toBeGreaterThanOrEqual(0);
      expect(iterationsWhilePaused).toBeLessThan(10);
    });
  });
});
