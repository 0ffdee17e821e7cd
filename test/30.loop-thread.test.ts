// loop(): the reactor polls on a native thread and hands each wait's ready events to the JS
// thread through a thread-safe function. The two threads take turns (JS updates interest
// and calls resume(); the thread polls and queues one batch; onBatch dispatches), so these
// tests prove what that protocol promises: Node's own timers and sockets keep running while
// the thread waits, interest changed outside a handler wakes the thread, and the loop's
// ending, counting, error routing, misuse and ref/unref behave as documented.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import {
  AF_INET,
  Dispatcher,
  DispatcherWithSend,
  ExitNow,
  type IterationTrace,
  POLLIN,
  POLLOUT,
  Socket,
  type SocketMap,
  closeAll,
  loop,
  loopSync,
  poll,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS, DIST, EchoHandler, EchoServer, ROOT, closeTestMaps, testMap, waitExit } from './helpers.js';

// --- Servers and clients -------------------------------------------------------------------

/** A client that only sends: what comes back is read and dropped. */
class QuietSender extends DispatcherWithSend {
  override handleConnect(): void {}

  override handleRead(): void {
    this.recv(8192);
  }

  override handleClose(): void {
    this.close();
  }
}

/**
 * A node:net client that sends `size` bytes, waits for the same bytes back, and repeats
 * `roundTrips` times; resolves with the round trips completed once the server has closed.
 */
function pingPong(port: number, roundTrips: number, size = 64): Promise<number> {
  return new Promise((resolve, reject) => {
    const message = Buffer.alloc(size);
    for (let i = 0; i < size; i++) message[i] = (i * 7 + port) & 0xff;
    let echoed = Buffer.alloc(0);
    let completed = 0;
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(message));
    socket.on('data', (chunk: Buffer) => {
      echoed = Buffer.concat([echoed, chunk]);
      if (echoed.length < size) return;
      if (!echoed.equals(message)) {
        socket.destroy(new Error(`round trip ${completed}: the echo differs from what was sent`));
        return;
      }
      echoed = Buffer.alloc(0);
      completed++;
      if (completed < roundTrips) socket.write(message);
      else socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      if (completed === roundTrips) resolve(completed);
      else reject(new Error(`closed after ${completed} of ${roundTrips} round trips`));
    });
  });
}

/** Rejects with `what` unless `promise` settles within `ms` (a safety net, not a speed test). */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} (not within ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` on Node's event loop until it holds. */
async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(5);
}

/** Whether the promise has settled by the time already-queued callbacks have run. */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  const result = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<symbol>((resolve) => setImmediate(() => resolve(marker))),
  ]);
  return result !== marker;
}

function listenNetEcho(): Promise<net.Server> {
  const server = net.createServer((socket) => socket.pipe(socket));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function netPort(server: net.Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
  return address.port;
}

// Every test polls maps of its own; whatever a failed test left open is closed here, which
// also ends any loop() still running on it.
const newMap = (): SocketMap => testMap();

afterEach(closeTestMaps);

// --- Node stays responsive -----------------------------------------------------------------

describe.each(BACKENDS)('loop() on %s', (backend) => {
  it('serves 50 ping-pong clients while a 10 ms interval ticks and a node:net server serves too', async () => {
    const map = newMap();
    const server = new EchoServer(map);
    const served = loop({ map, backend, timeout: 30 });
    const netServer = await listenNetEcho();

    let ticks = 0;
    let worstGap = 0;
    let lastTick = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - lastTick);
      lastTick = now;
      ticks++;
    }, 10);
    try {
      const clients = Array.from({ length: 50 }, () => pingPong(server.port, 200));
      const [netResult, ...results] = await Promise.all([pingPong(netPort(netServer), 200), ...clients]);
      expect(results).toEqual(Array.from({ length: 50 }, () => 200));
      expect(netResult).toBe(200);
    } finally {
      clearInterval(ticker);
      netServer.close();
    }
    // Each handler closed itself on its client's EOF: only the listener is left.
    expect([...map.values()]).toEqual([server]);
    server.close();
    await within(5000, 'loop() did not resolve once the map was empty', served);

    expect(ticks).toBeGreaterThan(0);
    // The poll timeout is 30 s: a JS thread blocked by the wait would show gaps that long.
    expect(worstGap).toBeLessThan(1000);
  });

  it('serves a dispatcher created from a timer while the thread waits (timeout 30 s)', async () => {
    const map = newMap();
    new EchoServer(map);
    const served = loop({ map, backend, timeout: 30 });
    // The thread is now waiting on the first listener alone; the second one is new interest.
    const late = await new Promise<EchoServer>((resolve) => setTimeout(() => resolve(new EchoServer(map)), 50));
    await expect(within(1000, 'the new listener was not served', pingPong(late.port, 3))).resolves.toBe(3);
    closeAll(map);
    await within(5000, 'loop() did not resolve', served);
  });

  it('delivers send() from a timer on an idle DispatcherWithSend (timeout 30 s)', async () => {
    const map = newMap();
    let received = 0;
    const payload = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    let allReceived: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allReceived = resolve));
    const sink = net.createServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received === payload.length) allReceived();
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new QuietSender(null, map);
      sender.createSocket(AF_INET);
      sender.connect(['127.0.0.1', netPort(sink)]);
      const served = loop({ map, backend, timeout: 30 });
      // Once connected the sender is idle: readable but never ready, not writable.
      await within(
        1000,
        'the connection did not complete',
        waitUntil(() => sender.connected),
      );
      await sleep(50);

      const queued = await new Promise<number>((resolve) =>
        setTimeout(() => {
          sender.send(payload);
          resolve(sender.outBuffer.length);
        }, 0),
      );
      // More than the kernel took at once: the rest needs POLLOUT interest the waiting
      // thread did not have, so only a wake-up delivers it before the 30 s timeout.
      expect(queued).toBeGreaterThan(0);
      // Far under the 30 s that tells a missed wake-up apart, and room for a slow machine.
      await within(10_000, `only ${received} of ${payload.length} bytes arrived`, done);
      expect(sender.outBuffer.length).toBe(0);
      sender.close();
      await within(5000, 'loop() did not resolve', served);
    } finally {
      sink.close();
    }
  });

  it('ends promptly when closeAll() runs from a timer while the thread waits', async () => {
    const map = newMap();
    const server = new EchoServer(map);
    const served = loop({ map, backend, timeout: 30 });
    await expect(pingPong(server.port, 2)).resolves.toBe(2);
    const idle = net.connect(server.port, '127.0.0.1');
    await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
    try {
      await waitUntil(() => map.size === 2);
      setTimeout(() => closeAll(map), 20);
      await within(1000, 'loop() did not end after closeAll()', served);
      expect(map.size).toBe(0);
    } finally {
      idle.destroy();
    }
  });

  it('keeps serving the others when one dispatcher is closed from a timer while the thread waits', async () => {
    const map = newMap();
    const server = new EchoServer(map);
    const served = loop({ map, backend, timeout: 30 });
    const idle = net.connect(server.port, '127.0.0.1');
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    try {
      await within(
        1000,
        'the idle client was not accepted',
        waitUntil(() => map.size === 2),
      );
      const handler = [...map.values()].find((d) => d !== server);
      setTimeout(() => handler?.close(), 0);
      await within(1000, 'the closed handler did not close its connection', idleClosed);
      // The next turn drops the closed fd from the backend and goes on with the listener.
      await expect(within(1000, 'the listener was not served', pingPong(server.port, 3))).resolves.toBe(3);
      expect([...map.values()]).toEqual([server]);
      expect(await settledNow(served)).toBe(false);
    } finally {
      idle.destroy();
    }
    closeAll(map);
    await within(5000, 'loop() did not resolve', served);
  });

  it('runs exactly `count` iterations, then resolves with the map untouched', async () => {
    const map = newMap();
    const server = new EchoServer(map);
    const iterations: number[] = [];
    const counted = loop({ map, backend, timeout: 0.01, count: 5, trace: (it) => iterations.push(it.iteration) });
    await within(5000, 'count: 5 did not end', counted);
    expect(iterations).toEqual([0, 1, 2, 3, 4]);
    expect(map.get(server.fileno() ?? -1)).toBe(server);
    // The map is free again and the listener still works under a second loop.
    const again: number[] = [];
    const served = loop({ map, backend, timeout: 30, trace: (it) => again.push(it.iteration) });
    await expect(pingPong(server.port, 1)).resolves.toBe(1);
    closeAll(map);
    await within(5000, 'loop() did not resolve', served);
    expect(again.length).toBeGreaterThan(0);
    expect(again).toEqual(again.map((_, i) => i));
  });

  it('rejects with ExitNow thrown by a handler, and releases the map', async () => {
    const map = newMap();
    class Quitter extends EchoServer {
      override handleAccepted(sock: Socket): void {
        sock.close();
        throw new ExitNow('enough');
      }
    }
    const server = new Quitter(map);
    const served = loop({ map, backend, timeout: 30 });
    const client = net.connect(server.port, '127.0.0.1');
    client.on('error', () => undefined);
    try {
      const failure = await within(
        1000,
        'loop() did not reject',
        served.then(
          () => null,
          (err: unknown) => err,
        ),
      );
      expect(failure).toBeInstanceOf(ExitNow);
      expect(failure).toMatchObject({ message: 'enough' });
      expect(map.get(server.fileno() ?? -1)).toBe(server);
      expect(() => loopSync({ map, count: 0 })).not.toThrow();
    } finally {
      client.destroy();
    }
  });

  it('routes a handler error to handleError and keeps serving', async () => {
    const map = newMap();
    const errors: unknown[] = [];
    class Touchy extends EchoHandler {
      override handleRead(): void {
        const data = this.recv(8192);
        if (data.toString() === 'boom') throw new Error('boom from handleRead');
        if (data.length > 0) this.send(data);
      }

      override handleError(err: unknown): void {
        errors.push(err);
      }
    }
    class TouchyServer extends EchoServer {
      protected override newHandler(sock: Socket): Dispatcher {
        return new Touchy(sock, this._map);
      }
    }
    const server = new TouchyServer(map);
    const served = loop({ map, backend, timeout: 30 });
    const client = net.connect(server.port, '127.0.0.1');
    try {
      await new Promise<void>((resolve) => client.once('connect', () => resolve()));
      client.write('boom');
      await within(
        1000,
        'handleError was not called',
        waitUntil(() => errors.length === 1),
      );
      expect(errors).toEqual([expect.objectContaining({ message: 'boom from handleRead' })]);
      client.write('after');
      const echo = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
      const echoed = await within(1000, 'no echo after the error', echo);
      expect(echoed).toBe('after');
      expect(await settledNow(served)).toBe(false);
    } finally {
      client.destroy();
    }
    closeAll(map);
    await within(5000, 'loop() did not resolve', served);
  });

  it('rejects with the error a throwing handleError raises', async () => {
    const map = newMap();
    class Fragile extends EchoServer {
      override handleAccepted(sock: Socket): void {
        sock.close();
        throw new Error('first failure');
      }

      override handleError(): void {
        throw new Error('handleError failed too');
      }
    }
    const server = new Fragile(map);
    const served = loop({ map, backend, timeout: 30 });
    const client = net.connect(server.port, '127.0.0.1');
    client.on('error', () => undefined);
    try {
      await expect(within(1000, 'loop() did not reject', served)).rejects.toThrow('handleError failed too');
    } finally {
      client.destroy();
    }
  });

  it('traces each iteration: what was asked, what was ready, how long it took', async () => {
    const map = newMap();
    const server = new EchoServer(map);
    const listenerFd = server.fileno() ?? -1;
    // A client dispatcher in the same map: connect, send "ping", expect "ping", close all.
    class Pinger extends DispatcherWithSend {
      answer = '';
      override handleConnect(): void {
        this.send('ping');
      }

      override handleRead(): void {
        this.answer += this.recv(64).toString();
        if (this.answer === 'ping') closeAll(map);
      }
    }
    const pinger = new Pinger(null, map);
    pinger.createSocket(AF_INET);
    pinger.connect(['127.0.0.1', server.port]);
    const clientFd = pinger.fileno() ?? -1;

    const traces: IterationTrace[] = [];
    const exchanged = loop({ map, backend, timeout: 30, trace: (it) => traces.push(it) });
    await within(5000, 'the exchange did not finish', exchanged);
    expect(pinger.answer).toBe('ping');

    expect(traces.length).toBeGreaterThan(1);
    expect(traces.map((it) => it.iteration)).toEqual(traces.map((_, i) => i));
    for (const it of traces) {
      expect(it.backend).toBe(backend);
      expect(Number.isFinite(it.waitMs) && it.waitMs >= 0).toBe(true);
      expect(Number.isFinite(it.dispatchMs) && it.dispatchMs >= 0).toBe(true);
      // Only watched fds can be ready, and the listener is never asked about writing.
      const watched = new Set([...it.read, ...it.write, ...it.except]);
      for (const { fd } of it.ready) expect(watched.has(fd)).toBe(true);
      expect(it.write).not.toContain(listenerFd);
    }
    const first = traces[0] as IterationTrace;
    expect(first.read).toEqual(expect.arrayContaining([listenerFd, clientFd]));
    // A connecting client is writable() until its connect completes.
    expect(first.write).toEqual([clientFd]);
    const readyEvents = traces.flatMap((it) => it.ready);
    expect(readyEvents.some(({ fd, events }) => fd === listenerFd && (events & POLLIN) !== 0)).toBe(true);
    expect(readyEvents.some(({ fd, events }) => fd === clientFd && (events & POLLOUT) !== 0)).toBe(true);
    expect(readyEvents.some(({ fd, events }) => fd === clientFd && (events & POLLIN) !== 0)).toBe(true);
  });
});

// --- Edges that do not depend on the backend -----------------------------------------------

describe('loop() edges', () => {
  it('resolves at once on an empty map, without an iteration', async () => {
    const traces: IterationTrace[] = [];
    const done = loop({ map: newMap(), trace: (it) => traces.push(it) });
    expect(await settledNow(done)).toBe(true);
    await expect(done).resolves.toBeUndefined();
    expect(traces).toEqual([]);
  });

  // A wake-up (interest changed outside a handler) ends the native wait early with nothing
  // ready. It is not an iteration, so it must not start the iteration's timeout afresh
  // either: otherwise wake-ups more frequent than `timeout` starve the loop, and a `count`
  // loop never ends.
  it('keeps counting iterations while wake-ups from outside keep arriving', async () => {
    const map = newMap();
    const server = new EchoServer(map);
    const iterations: number[] = [];
    const waker = setInterval(() => server.interestChanged(), 5);
    try {
      const counted = loop({ map, timeout: 0.05, count: 3, trace: (it) => iterations.push(it.iteration) });
      // Three 50 ms waits; the 2 s limit is a safety net against starvation.
      await within(2000, `count: 3 did not end (iterations so far: ${iterations.length})`, counted);
    } finally {
      clearInterval(waker);
    }
    expect(iterations).toEqual([0, 1, 2]);
  });

  it('refuses a second loop on a map being polled, with a clear Error', async () => {
    const map = newMap();
    new EchoServer(map);
    const served = loop({ map, timeout: 30 });
    expect(() => loop({ map })).toThrow(/already being polled/);
    expect(() => loopSync({ map, count: 1 })).toThrow(/already being polled/);
    expect(() => poll(0, map)).toThrow(/already being polled/);
    // The refused calls did not disturb the running loop.
    expect(await settledNow(served)).toBe(false);
    closeAll(map);
    await within(5000, 'loop() did not resolve', served);
  });

  it('runs on two maps at once: both are served, both resolve', async () => {
    const first = newMap();
    const second = newMap();
    const a = new EchoServer(first);
    const b = new EchoServer(second);
    const servedA = loop({ map: first, backend: BACKENDS[0], timeout: 30 });
    const servedB = loop({ map: second, backend: BACKENDS[BACKENDS.length - 1], timeout: 30 });
    await expect(Promise.all([pingPong(a.port, 20), pingPong(b.port, 20)])).resolves.toEqual([20, 20]);
    closeAll(first);
    await within(5000, 'the first loop did not resolve', servedA);
    expect(await settledNow(servedB)).toBe(false);
    await expect(pingPong(b.port, 5)).resolves.toBe(5);
    closeAll(second);
    await within(5000, 'the second loop did not resolve', servedB);
  });
});

// --- ref / unref -----------------------------------------------------------------------------

describe('loop() keeps Node alive unless unref()ed', () => {
  const fixture = join(ROOT, 'test', 'fixtures', 'loop-unref.mjs');
  const index = join(DIST, 'index.js');

  interface ChildResult {
    code: number | string;
    stdout: string;
    stderr: string;
    /** From the child's "listening" line to its exit. */
    msAfterListening: number;
  }

  function runChild(mode: 'ref' | 'unref' | 'unref-then-ref'): Promise<ChildResult> {
    const child = spawn(process.execPath, [fixture, index, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let listeningAt = Infinity;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (listeningAt === Infinity && stdout.includes('listening')) listeningAt = performance.now();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'close' comes after 'exit' and after the last of stdout was read: the output is whole.
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    return Promise.all([waitExit(child, 10_000), closed]).then(([code]) => ({
      code,
      stdout,
      stderr,
      msAfterListening: performance.now() - listeningAt,
    }));
  }

  it('a child whose only work is loop().unref() on a listener exits 0 by itself', async () => {
    const { code, stdout, stderr, msAfterListening } = await runChild('unref');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // The loop never ended: Node simply did not wait for it. Timed from the child's line, not
    // from the spawn (Node's start under AddressSanitizer alone can take seconds); a loop that
    // kept it alive would hold it for its 30 s timeout, and waitExit kills it at 10 s.
    expect(stdout).toBe('listening\n');
    expect(msAfterListening).toBeLessThan(5000);
  });

  it.each(['ref', 'unref-then-ref'] as const)(
    '%s: the child stays alive until an unref()ed timer closes the listener',
    async (mode) => {
      const { code, stdout, stderr } = await runChild(mode);
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(stdout).toBe('listening\nclosing\nloop resolved\n');
    },
  );
});
