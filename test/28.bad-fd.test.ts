// A map key that is not an open fd: the loop reports it to that dispatcher, as Python's poll()
// reports POLLNVAL and select() EBADF (both end in handleClose()), serves the rest of the map,
// and never allocates by the fd's value (a key of 2^31-1 or 50,000,000 costs nothing). The
// same holds for an fd closed behind the loop's back while it waits.
import { readdirSync, readlinkSync } from 'node:fs';

import {
  Dispatcher,
  DispatcherWithSend,
  type Socket,
  type SocketMap,
  loop,
  loopSync,
  poll,
  poll2,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS, EchoHandler, MODES, closeTestMaps, runLoop, testMap } from './helpers.js';

/** A dispatcher registered under `key`, whatever that number is. */
class Registered extends Dispatcher {
  closes = 0;

  constructor(key: number, map: SocketMap) {
    super(null, map);
    this._fileno = key;
    this.addChannel();
  }

  override handleClose(): void {
    this.closes++;
    this.close();
  }
}

/** Sends `message`, then closes itself and the echo once all of it came back. */
class Client extends DispatcherWithSend {
  received = Buffer.alloc(0);
  readonly #message: Buffer;
  readonly #echo: EchoHandler;

  constructor(sock: Socket, map: SocketMap, message: Buffer, echo: EchoHandler) {
    super(sock, map);
    this.#message = message;
    this.#echo = echo;
  }

  start(): void {
    this.send(this.#message);
  }

  override handleRead(): void {
    this.received = Buffer.concat([this.received, this.recv(4096)]);
    if (this.received.length >= this.#message.length) {
      this.close();
      this.#echo.close();
    }
  }

  override handleClose(): void {
    this.close();
  }
}

const MESSAGE = Buffer.from('bad fds must not stop the echo\n'.repeat(100));

/** An echo pair in `map`: a client and its echo over a socketpair. */
function echoPair(map: SocketMap): Client {
  const [a, b] = socketpair();
  const echo = new EchoHandler(b, map);
  return new Client(a, map, MESSAGE, echo);
}

/** An fd number below FD_SETSIZE that nothing has open (fds are handed out lowest first). */
function closedFdNumber(): number {
  const open = new Set(readdirSync('/proc/self/fd').map(Number));
  let fd = 900;
  while (open.has(fd)) fd++;
  return fd;
}

/** What fd `fd` of this process is now (e.g. `socket:[1234]`), or null when it is closed. */
function fdIdentity(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/** A map of this test's, closed after it at the latest 10 s in, so a broken loop cannot hang. */
function newMap(): SocketMap {
  return testMap(10);
}

afterEach(closeTestMaps);

const KEYS: [string, () => number][] = [
  ['a closed fd number', closedFdNumber],
  ['2^31-1', () => 2 ** 31 - 1],
  ['50,000,000', () => 50_000_000],
];

describe.each(BACKENDS)('a map key that is not an open fd (%s)', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    it.each(KEYS)('%s: the bad one gets handleClose, the echo pair is served', async (_name, key) => {
      const map = newMap();
      const client = echoPair(map);
      const bad = new Registered(key(), map);
      client.start();
      const rssBefore = process.memoryUsage().rss;
      await runLoop(mode, { map, backend, timeout: 5 });
      expect(bad.closes).toBe(1);
      expect(client.received.equals(MESSAGE)).toBe(true);
      expect(map.size).toBe(0);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
    });
  });
});

describe('poll() and poll2() with a map key that is not an open fd', () => {
  it.each([
    ['poll', poll],
    ['poll2', poll2],
  ])('%s reports it to its dispatcher in one call', (_name, once) => {
    const map = newMap();
    const bad = new Registered(2 ** 31 - 1, map);
    once(5, map);
    expect(bad.closes).toBe(1);
    expect(map.size).toBe(0);
  });
});

// epoll forgets an fd the moment it is closed, so it has nothing to report; select() fails the
// whole wait with EBADF and poll() says POLLNVAL, and both must reach that one dispatcher only.
describe.each(BACKENDS.filter((name) => name !== 'epoll'))('an fd closed behind the loop (%s)', (backend) => {
  it('sync: the next loopSync reports it to its dispatcher and serves the echo pair', () => {
    const map = newMap();
    const [a, b] = socketpair();
    const victim = new Registered(a.fileno(), map);
    const client = echoPair(map);
    loopSync({ map, backend, count: 1, timeout: 0 });
    // Nothing may open an fd between this close and the loop: it would take a's number.
    a.close();
    client.start();
    loopSync({ map, backend, timeout: 5 });
    b.close();
    expect(victim.closes).toBe(1);
    expect(client.received.equals(MESSAGE)).toBe(true);
  });

  /**
   * One run of the thread case. `reusedBy` is what took the closed fd's number (see below) when
   * the echo pair was done and the victim still untold, or null.
   */
  async function closedWhileWaiting(): Promise<{ fd: number; told: number; echoed: boolean; reusedBy: string | null }> {
    const map = newMap();
    const [a, b] = socketpair();
    const fd = a.fileno();
    const was = fdIdentity(fd);
    const victim = new Registered(fd, map);
    const client = echoPair(map);
    const running = loop({ map, backend, timeout: 5 });
    // The thread is waiting on `a` now (nothing is ready): close it behind the loop's back,
    // then start traffic, which wakes the wait.
    await new Promise((resolve) => setTimeout(resolve, 50));
    a.close();
    client.start();
    let reusedBy: string | null = null;
    // The map empties as the loop ends (closeAll, the backstop's too).
    while (map.size > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (victim.closes > 0 || !client.received.equals(MESSAGE)) continue;
      // The pair echoed and closed itself, and the victim was not told: unless its number is
      // open on something else now, the loop runs on to the backstop and the test fails on
      // victim.closes. Something else is an fd that another thread of this process (libuv's
      // pool, vitest's) opened before the loop's next wait: that wait saw an open fd, with
      // nothing to report. Nothing to learn from such a run: it ends here (close() only unmaps
      // the victim, which owns no socket) and is run again.
      const now = fdIdentity(fd);
      if (now !== null && now !== was) {
        reusedBy = now;
        victim.close();
      }
      break;
    }
    await running;
    b.close();
    return { fd, told: victim.closes, echoed: client.received.equals(MESSAGE), reusedBy };
  }

  it('thread: closed while the native thread waits, it is reported and the rest is served', async () => {
    for (let attempt = 1; ; attempt++) {
      const run = await closedWhileWaiting();
      if (run.reusedBy !== null && attempt < 5) continue;
      const cause = run.reusedBy === null ? '' : ` (its number was reused in all ${attempt} runs: ${run.reusedBy})`;
      expect(run.told, `times fd ${run.fd}'s dispatcher was told it closed${cause}`).toBe(1);
      expect(run.echoed).toBe(true);
      return;
    }
  });
});
