// CPython's BaseTestAPI and DispatcherWithSendTests (test_asyncore.py), ported, on every
// backend x address family x loop mode: 'sync' runs loopSync() on this thread, 'thread'
// runs `await loop()` with the wait on a native thread. Every case is written once.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

import {
  AF_UNIX,
  type Address,
  Dispatcher,
  DispatcherWithSend,
  ExitNow,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_REUSEADDR,
  SO_SNDBUF,
  Socket,
  SocketError,
  type SocketMap,
  closeAll,
} from 'asyncore';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { BACKENDS, FAMILIES, type Family, MODES, type Mode, removeUnixPath, runLoop } from './helpers.js';

type Backend = (typeof BACKENDS)[number];

interface Combination {
  name: string;
  backend: Backend;
  family: Family;
  mode: Mode;
}

const MATRIX: Combination[] = BACKENDS.flatMap((backend) =>
  FAMILIES.flatMap((family) =>
    MODES.map((mode) => ({ name: `${backend} ${family.name} ${mode}`, backend, family, mode })),
  ),
);

// Linux's <sys/socket.h>; the package exports only what API.md names.
const MSG_OOB = 1;
// /proc/<pid>/fdinfo prints the file status flags in octal.
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

/** Addresses bound during a test, removed afterwards (AF_UNIX leaves files behind). */
const boundAddresses: Address[] = [];

function bindFresh(dispatcher: Dispatcher, family: Family): void {
  const address = family.any();
  boundAddresses.push(address);
  dispatcher.bind(address);
}

function socketOf(dispatcher: Dispatcher): Socket {
  if (dispatcher.socket instanceof Socket) return dispatcher.socket;
  throw new Error(`${String(dispatcher)} has no Socket`);
}

// --- CPython's test classes ------------------------------------------------------------------

/** Every event it is not meant to see raises, and handleError re-raises (Python's bare `raise`). */
class BaseTestHandler extends Dispatcher {
  flag = false;

  // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- makes `map` required: no test may use the global map
  constructor(sock: Socket | null, map: SocketMap) {
    super(sock, map);
  }

  override handleAccept(): void {
    throw new Error('handleAccept not supposed to be called');
  }
  override handleAccepted(_sock: Socket, _addr: Address): void {
    throw new Error('handleAccepted not supposed to be called');
  }
  override handleConnect(): void {
    throw new Error('handleConnect not supposed to be called');
  }
  override handleExpt(): void {
    throw new Error('handleExpt not supposed to be called');
  }
  override handleClose(): void {
    throw new Error('handleClose not supposed to be called');
  }
  override handleError(err: unknown): void {
    throw err;
  }
}

type HandlerFactory = (sock: Socket, map: SocketMap) => Dispatcher;

/** Listens on a fresh address of the family and hands each connection to `makeHandler`. */
class BaseServer extends Dispatcher {
  accepted = 0;

  constructor(
    family: Family,
    map: SocketMap,
    private readonly makeHandler: HandlerFactory = (sock, m) => new BaseTestHandler(sock, m),
  ) {
    super(null, map);
    this.createSocket(family.family);
    this.setReuseAddr();
    bindFresh(this, family);
    this.listen(5);
  }

  get address(): Address {
    return socketOf(this).getsockname();
  }

  override handleAccepted(sock: Socket): void {
    this.accepted++;
    this.makeHandler(sock, this._map);
  }

  override handleError(err: unknown): void {
    throw err;
  }
}

class BaseClient extends BaseTestHandler {
  constructor(family: Family, address: Address, map: SocketMap) {
    super(null, map);
    this.createSocket(family.family);
    this.connect(address);
  }

  override handleConnect(): void {
    // Connecting is expected.
  }
}

// --- The matrix ------------------------------------------------------------------------------

describe.each(MATRIX)('BaseTestAPI over $name', ({ backend, family, mode }) => {
  let map: SocketMap;
  const isUnix = family.family === AF_UNIX;

  beforeEach(() => {
    map = new Map();
  });

  afterEach(() => {
    closeAll(map, true);
    for (const address of boundAddresses.splice(0)) removeUnixPath(address);
  });

  /** Python's loop_waiting_for_flag: one iteration at a time until `done()`, at most `rounds`. */
  async function loopUntil(done: () => boolean, what: string, rounds = 100, perRound = 1): Promise<void> {
    for (let round = 0; round < rounds && map.size > 0; round++) {
      await runLoop(mode, { backend, map, timeout: 0.05, count: perRound });
      if (done()) return;
    }
    throw new Error(`${what} did not happen (${map.size} dispatchers left in the map)`);
  }

  const waitForFlag = (instance: { flag: boolean }): Promise<void> => loopUntil(() => instance.flag, 'flag set');

  it('handleConnect is called on connect()', async () => {
    class TestClient extends BaseClient {
      override handleConnect(): void {
        this.flag = true;
      }
    }
    const server = new BaseServer(family, map);
    const client = new TestClient(family, server.address, map);
    await waitForFlag(client);
    expect(client.connected).toBe(true);
    expect(client.connecting).toBe(false);
  });

  it('handleAccept is called when a client connects', async () => {
    class TestListener extends BaseTestHandler {
      constructor() {
        super(null, map);
        this.createSocket(family.family);
        bindFresh(this, family);
        this.listen(5);
      }
      override handleAccept(): void {
        this.flag = true;
      }
    }
    const server = new TestListener();
    new BaseClient(family, socketOf(server).getsockname(), map);
    await waitForFlag(server);
  });

  it('handleAccepted is called with the new socket and its address', async () => {
    let peer: Address | undefined;
    class TestListener extends BaseTestHandler {
      constructor() {
        super(null, map);
        this.createSocket(family.family);
        bindFresh(this, family);
        this.listen(5);
      }
      override handleAccept(): void {
        Dispatcher.prototype.handleAccept.call(this);
      }
      override handleAccepted(sock: Socket, addr: Address): void {
        peer = addr;
        sock.close();
        this.flag = true;
      }
    }
    const server = new TestListener();
    const client = new BaseClient(family, socketOf(server).getsockname(), map);
    await waitForFlag(server);
    // UNIX clients that never bound are unnamed: ''.
    expect(peer).toEqual(isUnix ? '' : socketOf(client).getsockname());
  });

  it('handleRead is called on data received', async () => {
    class TestClient extends BaseClient {
      override handleRead(): void {
        this.flag = true;
      }
    }
    const server = new BaseServer(family, map, (sock, m) => {
      const handler = new BaseTestHandler(sock, m);
      handler.send(Buffer.alloc(1024, 'x'));
      return handler;
    });
    const client = new TestClient(family, server.address, map);
    await waitForFlag(client);
  });

  it('handleWrite is called', async () => {
    class TestClient extends BaseClient {
      override handleWrite(): void {
        this.flag = true;
      }
    }
    const server = new BaseServer(family, map);
    const client = new TestClient(family, server.address, map);
    await waitForFlag(client);
  });

  it('handleClose is called when the other end closes the connection', async () => {
    class TestClient extends BaseClient {
      override handleRead(): void {
        // handleClose comes from the recv() that sees EOF.
        this.recv(1024);
      }
      override handleClose(): void {
        this.flag = true;
        this.close();
      }
    }
    const server = new BaseServer(family, map, (sock, m) => {
      const handler = new BaseTestHandler(sock, m);
      handler.close();
      return handler;
    });
    const client = new TestClient(family, server.address, map);
    await waitForFlag(client);
    expect(client.connected).toBe(false);
    expect(map.has(socketOf(client).fileno())).toBe(false);
  });

  it('handleClose is called after the connection broke (ECONNRESET/EPIPE, bpo-5661, bpo-11265)', async () => {
    const data = Buffer.alloc(128);
    class TestClient extends BaseClient {
      override handleWrite(): void {
        this.send(data);
      }
      override handleClose(): void {
        this.flag = true;
        this.close();
      }
      override handleExpt(): void {
        this.flag = true;
        this.close();
      }
    }
    class TestHandler extends BaseTestHandler {
      override handleRead(): void {
        this.recv(data.length);
        this.close();
      }
      override writable(): boolean {
        return false;
      }
    }
    const server = new BaseServer(family, map, (sock, m) => new TestHandler(sock, m));
    const client = new TestClient(family, server.address, map);
    await waitForFlag(client);
  });

  if (!isUnix) {
    it('handleExpt is called on out-of-band data (TCP only, as in CPython)', async () => {
      let oob: Buffer | undefined;
      class TestClient extends BaseClient {
        override handleExpt(): void {
          oob = socketOf(this).recv(1024, MSG_OOB);
          this.flag = true;
        }
      }
      const server = new BaseServer(family, map, (sock, m) => {
        const handler = new BaseTestHandler(sock, m);
        socketOf(handler).send(Buffer.from([244]), MSG_OOB);
        return handler;
      });
      const client = new TestClient(family, server.address, map);
      await waitForFlag(client);
      expect(oob).toEqual(Buffer.from([244]));
    });
  }

  it('handleError gets what a handler threw, and the loop goes on', async () => {
    class DivisionByZero extends Error {}
    let handled: unknown;
    class TestClient extends BaseClient {
      override handleWrite(): void {
        throw new DivisionByZero('1.0 / 0');
      }
      override handleError(err: unknown): void {
        handled = err;
        this.flag = true;
      }
    }
    const server = new BaseServer(family, map);
    const client = new TestClient(family, server.address, map);
    await waitForFlag(client);
    expect(handled).toBeInstanceOf(DivisionByZero);
    // handleError did not close it, so it is still served.
    expect(map.get(socketOf(client).fileno())).toBe(client);
  });

  it('ExitNow from a handler leaves the loop past handleError, and the map stays usable', async () => {
    let errorsHandled = 0;
    class QuittingClient extends BaseClient {
      quit = true;
      override handleWrite(): void {
        if (this.quit) throw new ExitNow('stop here');
        this.flag = true;
      }
      override handleError(): void {
        errorsHandled++;
      }
    }
    const server = new BaseServer(family, map);
    const client = new QuittingClient(family, server.address, map);
    let escaped: unknown;
    try {
      await runLoop(mode, { backend, map, timeout: 1, count: 10 });
    } catch (err) {
      escaped = err;
    }
    expect(escaped).toBeInstanceOf(ExitNow);
    expect(errorsHandled).toBe(0);
    expect(map.get(socketOf(client).fileno())).toBe(client);
    // The next loop call on the same map carries on.
    client.quit = false;
    await waitForFlag(client);
  });

  it('keeps connected / accepting / connecting / addr up to date', async () => {
    const server = new BaseServer(family, map);
    const serverAddress = server.address;
    const client = new BaseClient(family, serverAddress, map);

    // We start disconnected.
    expect(server.connected).toBe(false);
    expect(server.accepting).toBe(true);
    expect(client.accepting).toBe(false);
    expect(client.addr).toEqual(serverAddress);

    // Some iterations, so that the client connects.
    await runLoop(mode, { backend, map, timeout: 0.01, count: 100 });
    expect(server.connected).toBe(false);
    expect(server.accepting).toBe(true);
    expect(client.connected).toBe(true);
    expect(client.connecting).toBe(false);
    expect(client.accepting).toBe(false);
    expect(server.accepted).toBe(1);

    // Disconnect the client.
    client.close();
    expect(server.connected).toBe(false);
    expect(server.accepting).toBe(true);
    expect(client.connected).toBe(false);
    expect(client.accepting).toBe(false);

    // Stop serving.
    server.close();
    expect(server.connected).toBe(false);
    expect(server.accepting).toBe(false);
  });

  it('createSocket makes a non-blocking, close-on-exec stream socket of the family', () => {
    const d = new Dispatcher(null, map);
    d.createSocket(family.family);
    const sock = socketOf(d);
    expect(sock.type).toBe(SOCK_STREAM);
    expect(sock.family).toBe(family.family);
    const flags = Number.parseInt(
      /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${sock.fileno()}`, 'utf8'))?.[1] ?? 'x',
      8,
    );
    expect(flags & O_NONBLOCK).toBe(O_NONBLOCK);
    expect(flags & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(map.get(sock.fileno())).toBe(d);
    expect(d.fileno()).toBe(sock.fileno());
  });

  it('bind to an address in use throws EADDRINUSE', () => {
    const first = new Dispatcher(null, map);
    first.createSocket(family.family);
    bindFresh(first, family);
    first.listen(5);

    const second = new Dispatcher(null, map);
    second.createSocket(family.family);
    let error: unknown;
    try {
      second.bind(socketOf(first).getsockname());
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SocketError);
    expect(error).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
  });

  if (!isUnix) {
    it('setReuseAddr sets SO_REUSEADDR (IP only, as in CPython)', () => {
      const d = new Dispatcher(new Socket(family.family), map);
      expect(socketOf(d).getsockopt(SOL_SOCKET, SO_REUSEADDR)).toBe(0);
      socketOf(d).close();
      d.createSocket(family.family);
      d.setReuseAddr();
      expect(socketOf(d).getsockopt(SOL_SOCKET, SO_REUSEADDR)).not.toBe(0);
    });

    it('survives a client that connects and resets at once (quick_connect, bpo-10340)', async () => {
      class ClosingHandler extends Dispatcher {
        override handleRead(): void {
          this.recv(1024);
        }
        override handleClose(): void {
          this.close();
        }
      }
      const server = new BaseServer(family, map, (sock, m) => new ClosingHandler(sock, m));
      const [host, port] = server.address as readonly [string, number];
      // Node's resetAndDestroy() closes with SO_LINGER {1, 0}: the peer gets RST, as in CPython.
      await new Promise<void>((resolve, reject) => {
        const peer = connect({ host, port }, () => peer.resetAndDestroy());
        peer.on('error', reject);
        peer.on('close', () => resolve());
      });
      await loopUntil(() => server.accepted === 1 && map.size === 1, 'accept and close of the reset connection');
      expect(server.accepting).toBe(true);
    });
  }

  it('a refused connection ends in ECONNREFUSED, from connect() or through handleError', async () => {
    // A fresh address nobody listens on: bound, never listened.
    const silent = new Socket(family.family);
    const address = family.any();
    boundAddresses.push(address);
    silent.bind(address);
    const target = silent.getsockname();
    let failure: unknown;
    class RefusedClient extends BaseTestHandler {
      override handleError(err: unknown): void {
        failure = err;
        this.flag = true;
        this.close();
      }
    }
    try {
      const client = new RefusedClient(null, map);
      client.createSocket(family.family);
      try {
        client.connect(target);
      } catch (err) {
        failure = err;
        client.flag = true;
      }
      if (!client.flag) await waitForFlag(client);
      expect(failure).toBeInstanceOf(SocketError);
      expect(failure).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
    } finally {
      silent.close();
    }
  });

  // --- DispatcherWithSendTests ---------------------------------------------------------------

  /** Reads everything into `received`; it only reads, so it is never asked about writing. */
  class CaptureHandler extends Dispatcher {
    readonly chunks: Buffer[] = [];
    bytes = 0;
    override handleRead(): void {
      const data = this.recv(65536);
      this.chunks.push(data);
      this.bytes += data.length;
    }
    override writable(): boolean {
      return false;
    }
    override handleClose(): void {
      this.close();
    }
  }

  /** CPython's dispatcherwithsend_noread. */
  class NoReadSender extends DispatcherWithSend {
    override readable(): boolean {
      return false;
    }
    override handleConnect(): void {
      // Connecting is expected.
    }
  }

  function captureServer(): { server: BaseServer; handlers: CaptureHandler[] } {
    const handlers: CaptureHandler[] = [];
    const server = new BaseServer(family, map, (sock, m) => {
      const handler = new CaptureHandler(sock, m);
      handlers.push(handler);
      return handler;
    });
    return { server, handlers };
  }

  it('DispatcherWithSend delivers what send() queued (test_send)', async () => {
    const { server, handlers } = captureServer();
    const data = Buffer.from("Suppose there isn't a 16-ton weight?");
    const d = new NoReadSender(null, map);
    d.createSocket(family.family);
    d.connect(server.address);
    // Queued before the connection is even up: nothing may be lost.
    expect(d.send(data)).toBe(data.length);
    d.send(data);
    d.send('\n');
    const received = (): Buffer => Buffer.concat(handlers[0]?.chunks ?? []);
    await loopUntil(() => d.outBuffer.length === 0 && received().includes('\n'), 'all data received');
    expect(received()).toEqual(Buffer.concat([data, data, Buffer.from('\n')]));
  });

  it('DispatcherWithSend sends a lot of data, and all of it arrives in order', async () => {
    const { server, handlers } = captureServer();
    const payload = randomBytes(2 * 1024 * 1024);
    const d = new NoReadSender(null, map);
    d.createSocket(family.family);
    // A small kernel buffer, so that most of the payload has to wait in outBuffer.
    socketOf(d).setsockopt(SOL_SOCKET, SO_SNDBUF, 131072);
    d.connect(server.address);
    expect(d.send(payload)).toBe(payload.length);
    expect(d.outBuffer.length).toBeGreaterThan(0);
    await loopUntil(() => (handlers[0]?.bytes ?? 0) >= payload.length, 'all 2 MiB received', 400);
    expect(d.outBuffer.length).toBe(0);
    expect(Buffer.concat(handlers[0]?.chunks ?? []).equals(payload)).toBe(true);
  });
});
