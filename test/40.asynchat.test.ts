// AsyncChat against a real peer: CPython's test_asynchat.py ported, on every backend in both
// loops, plus the bound on what one message may collect (maxIncomingBuffer).
//
// The peer is Python's echo_server translated into a dispatcher of the same map: it collects
// until it sees QUIT, then sends everything back `chunkSize` bytes per write event and closes,
// so the client reads the echo in small pieces and terminators arrive split across reads.
import {
  AF_INET,
  AsyncChat,
  Dispatcher,
  IPPROTO_TCP,
  SimpleProducer,
  Socket,
  type SocketMap,
  TCP_NODELAY,
  type Terminator,
  closeAll,
  findPrefixAtEnd,
  loop,
  loopSync,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS, EchoServer, MODES, type Mode, callUntyped } from './helpers.js';

const SERVER_QUIT = Buffer.from('QUIT\n');
const EMPTY = Buffer.alloc(0);

/** One accepted connection of Python's echo_server. */
class EchoConnection extends Dispatcher {
  received = EMPTY;
  #toSend: Buffer | null = null;

  constructor(
    sock: Socket,
    map: SocketMap,
    readonly chunkSize: number,
    /** test_close_when_done: keep quiet and just collect until the client has gone. */
    readonly holdEcho: boolean,
  ) {
    super(sock, map);
  }

  override readable(): boolean {
    return this.#toSend === null;
  }

  override writable(): boolean {
    return this.#toSend !== null;
  }

  override handleRead(): void {
    const data = this.recv(8192);
    if (data.length === 0) return;
    this.received = Buffer.concat([this.received, data]);
    if (!this.holdEcho && this.received.includes(SERVER_QUIT)) {
      this.received = Buffer.from(this.received.toString('latin1').replaceAll('QUIT\n', ''), 'latin1');
      this.#toSend = this.received;
    }
  }

  override handleWrite(): void {
    const pending = this.#toSend ?? EMPTY;
    const sent = this.send(pending.subarray(0, this.chunkSize));
    this.#toSend = pending.subarray(sent);
    if (this.#toSend.length === 0) this.close();
  }

  override handleClose(): void {
    this.close();
  }
}

/** Python's echo_server: accepts one connection, then stops listening. */
class ChatEchoServer extends EchoServer {
  connection: EchoConnection | null = null;

  constructor(
    readonly map: SocketMap,
    readonly chunkSize = 1,
    readonly holdEcho = false,
  ) {
    super(map);
  }

  override handleAccepted(sock: Socket): void {
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    this.connection = new EchoConnection(sock, this.map, this.chunkSize, this.holdEcho);
    this.close();
  }
}

/** Python's echo_client: each message it finds ends up in `contents`. */
class EchoClient extends AsyncChat {
  contents: Buffer[] = [];
  #chunks: Buffer[] = [];

  constructor(terminator: Terminator, port: number, map: SocketMap) {
    super(null, map);
    this.createSocket(AF_INET);
    this.connect(['127.0.0.1', port]);
    this.setTerminator(terminator);
  }

  /** What was collected since the last terminator. */
  get buffer(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  override handleConnect(): void {}

  override collectIncomingData(data: Buffer): void {
    this.#chunks.push(data);
  }

  override foundTerminator(): void {
    this.contents.push(this.buffer);
    this.#chunks = [];
  }
}

/** Runs the map until it is empty; `count` and a short timeout only stop a broken test. */
async function runLoop(mode: Mode, backend: string, map: SocketMap): Promise<void> {
  const options = { map, backend: backend as 'select', timeout: 0.05, count: 5000 };
  if (mode === 'sync') loopSync(options);
  else await loop(options);
  expect(map.size).toBe(0);
}

const texts = (buffers: Buffer[]): string[] => buffers.map((b) => b.toString('latin1'));

describe.each(MODES.flatMap((mode) => BACKENDS.map((backend) => ({ mode, backend }))))(
  'AsyncChat with an echo server ($mode loop, $backend)',
  ({ mode, backend }) => {
    let map: SocketMap = new Map();
    afterEach(() => {
      closeAll(map);
      map = new Map();
    });

    async function lineTerminatorCheck(term: string, chunkSize: number): Promise<void> {
      const server = new ChatEchoServer(map, chunkSize);
      const client = new EchoClient(Buffer.from(term), server.port, map);
      client.push(Buffer.from('hello '));
      client.push(Buffer.from(`world${term}`));
      client.push(Buffer.from(`I'm not dead yet!${term}`));
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual(['hello world', "I'm not dead yet!"]);
    }

    it.each([1, 2, 3])('finds a one-byte terminator, echoed %i bytes at a time', async (chunk) => {
      await lineTerminatorCheck('\n', chunk);
    });

    it.each([1, 2, 3])('finds a two-byte terminator, echoed %i bytes at a time', async (chunk) => {
      await lineTerminatorCheck('\r\n', chunk);
    });

    it.each([1, 2, 3])('finds a three-byte terminator, echoed %i bytes at a time', async (chunk) => {
      await lineTerminatorCheck('qqq', chunk);
    });

    it.each([1, 6])('reads a numeric terminator of %i bytes, then stops reporting', async (n) => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(n, server.port, map);
      const data = Buffer.from("hello world, I'm not dead yet!\n");
      client.push(data);
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual([data.subarray(0, n).toString('latin1')]);
      // The terminator counted down to 0, which means "no terminator": the rest is collected.
      expect(client.getTerminator()).toBe(0);
      expect(client.buffer.toString('latin1')).toBe(data.subarray(n).toString('latin1'));
    });

    it('with a null terminator collects everything and reports nothing', async () => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(null, server.port, map);
      const data = Buffer.from("hello world, I'm not dead yet!\n");
      client.push(data);
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(client.contents).toEqual([]);
      expect(client.buffer.equals(data)).toBe(true);
    });

    it('sends through a SimpleProducer', async () => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(Buffer.from('\n'), server.port, map);
      const data = Buffer.from("hello world\nI'm not dead yet!\n");
      client.pushWithProducer(new SimpleProducer(Buffer.concat([data, SERVER_QUIT]), 8));
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual(['hello world', "I'm not dead yet!"]);
    });

    it('takes plain bytes as a producer', async () => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(Buffer.from('\n'), server.port, map);
      client.pushWithProducer(Buffer.from("hello world\nI'm not dead yet!\nQUIT\n"));
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual(['hello world', "I'm not dead yet!"]);
    });

    it('reports an empty line as an empty message', async () => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(Buffer.from('\n'), server.port, map);
      client.push(Buffer.from("hello world\n\nI'm not dead yet!\n"));
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual(['hello world', '', "I'm not dead yet!"]);
    });

    it('closeWhenDone() closes the channel once everything queued is sent', async () => {
      const server = new ChatEchoServer(map, 1, true);
      const client = new EchoClient(Buffer.from('\n'), server.port, map);
      const data = Buffer.from("hello world\nI'm not dead yet!\n");
      client.push(data);
      client.push(SERVER_QUIT);
      client.closeWhenDone();
      await runLoop(mode, backend, map);
      expect(client.contents).toEqual([]);
      expect(client.fileno()).toBeNull();
      // Everything pushed before closeWhenDone() reached the server before the close.
      expect(server.connection?.received.toString()).toBe(`${data.toString()}QUIT\n`);
    });

    it('push() takes Buffers and Uint8Arrays, and refuses numbers and strings', async () => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(Buffer.from('\n'), server.port, map);
      const data = Buffer.from('bytes\n');
      client.push(data);
      client.push(new Uint8Array(data));
      client.push(new Uint8Array(Buffer.from('xxbytes\nyy')).subarray(2, 8));
      expect(() => callUntyped(client, 'push', 10)).toThrow(TypeError);
      expect(() => client.push('unicode')).toThrow(/useEncoding/);
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual(['bytes', 'bytes', 'bytes']);
    });

    it('push() of a large amount arrives whole and in order', async () => {
      const server = new ChatEchoServer(map, 65536);
      const client = new EchoClient(Buffer.from('\r\n'), server.port, map);
      client.acOutBufferSize = 4096;
      const lines = Array.from({ length: 50_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 37)}`);
      const big = Buffer.from(lines.map((line) => `${line}\r\n`).join(''));
      client.push(big);
      // push() copies: reusing the caller's buffer afterwards changes nothing on the wire.
      big.fill(0);
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(client.contents.length).toBe(lines.length);
      expect(texts(client.contents)).toEqual(lines);
    });

    it('with useEncoding takes strings, encoded with `encoding`', async () => {
      const server = new ChatEchoServer(map, 3);
      const client = new EchoClient(null, server.port, map);
      client.useEncoding = true;
      client.setTerminator('\r\n');
      client.push('héllo\r\nwörld\r\n');
      expect(() => client.push('€ is not latin1')).toThrow(RangeError);
      client.push('QUIT\n');
      await runLoop(mode, backend, map);
      expect(client.contents.map((b) => b.toString('latin1'))).toEqual(['héllo', 'wörld']);
      expect(client.contents[0]?.length).toBe(5);
    });

    it('discardBuffers() drops what is queued to send', async () => {
      const server = new ChatEchoServer(map);
      const client = new EchoClient(Buffer.from('\n'), server.port, map);
      // Not connected yet: push() only queues.
      client.push(Buffer.from('never sent\n'));
      client.discardBuffers();
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(client.contents).toEqual([]);
      expect(server.connection?.received.length).toBe(0);
    });

    it('discardBuffers() inside foundTerminator() drops the rest of the input', async () => {
      const server = new ChatEchoServer(map, 1 << 16);
      const client = new (class extends EchoClient {
        override foundTerminator(): void {
          super.foundTerminator();
          this.discardBuffers();
        }
      })(Buffer.from('\n'), server.port, map);
      // Echoed in one send(), so it arrives in one read: the two lines after the first are dropped.
      client.push(Buffer.from('first\nsecond\nthird\n'));
      client.push(SERVER_QUIT);
      await runLoop(mode, backend, map);
      expect(texts(client.contents)).toEqual(['first']);
    });

    it('closes a channel whose peer never sends the terminator, with its memory bounded', async () => {
      const [ours, theirs] = socketpair();
      const flood = new Flood(theirs, map, 4 << 20);
      const chat = new BoundedChat(ours, map);
      await runLoop(mode, backend, map);
      expect(chat.errors).toHaveLength(1);
      expect(String(chat.errors[0])).toMatch(/maxIncomingBuffer \(262144 bytes\).*"\\n"/);
      expect(chat.fileno()).toBeNull();
      expect(chat.peakRetained).toBeLessThanOrEqual(chat.maxIncomingBuffer);
      // It got close to the bound before closing: the bound, not something else, stopped it.
      expect(chat.peakRetained).toBeGreaterThan(chat.maxIncomingBuffer - chat.acInBufferSize);
      expect(flood.sent).toBeGreaterThan(chat.maxIncomingBuffer);
    });

    it('keeps collecting past maxIncomingBuffer in total when each message is within it', async () => {
      const [ours, theirs] = socketpair();
      const lines = Buffer.from(`${'y'.repeat(100_000)}\n`.repeat(20));
      new Flood(theirs, map, lines.length, lines);
      const chat = new BoundedChat(ours, map);
      await runLoop(mode, backend, map);
      expect(chat.errors).toEqual([]);
      expect(chat.messages).toBe(20);
    });
  },
);

/** Sends `total` bytes of `pattern` (repeated), then closes; a peer that goes away ends it too. */
class Flood extends Dispatcher {
  sent = 0;

  constructor(
    sock: Socket,
    map: SocketMap,
    readonly total: number,
    readonly pattern: Buffer = Buffer.alloc(65536, 'x'),
  ) {
    super(sock, map);
  }

  override readable(): boolean {
    return false;
  }

  override handleWrite(): void {
    const offset = this.sent % this.pattern.length;
    const piece = this.pattern.subarray(offset, offset + Math.min(this.total - this.sent, 65536));
    this.sent += this.send(piece);
    if (this.sent >= this.total) this.close();
  }

  override handleClose(): void {
    this.close();
  }
}

/** Keeps each line until its terminator, as a real protocol would, and measures what it kept. */
class BoundedChat extends AsyncChat {
  errors: unknown[] = [];
  peakRetained = 0;
  messages = 0;

  constructor(sock: Socket, map: SocketMap) {
    super(sock, map);
    this.maxIncomingBuffer = 256 * 1024;
    this.setTerminator('\n');
  }

  override collectIncomingData(data: Buffer): void {
    this.collectIntoIncoming(data);
    const retained = this.incoming.reduce((sum, chunk) => sum + chunk.length, 0);
    this.peakRetained = Math.max(this.peakRetained, retained);
  }

  override foundTerminator(): void {
    this.takeIncoming();
    this.messages++;
  }

  override handleError(err: unknown): void {
    this.errors.push(err);
    super.handleError(err);
  }

  override logInfo(): void {}
}

// callUntyped() and Reflect.apply() below pass arguments the types forbid, as plain JavaScript can.
describe('AsyncChat without a loop', () => {
  let map: SocketMap = new Map();
  afterEach(() => {
    closeAll(map);
    map = new Map();
  });

  it('findPrefixAtEnd finds how much of a terminator ends the data', () => {
    expect(findPrefixAtEnd('qwerty\r', '\r\n')).toBe(1);
    expect(findPrefixAtEnd('qwertydkjf', '\r\n')).toBe(0);
    expect(findPrefixAtEnd(Buffer.from('abc\r\n.'), Buffer.from('\r\n.\r\n'))).toBe(3);
    expect(findPrefixAtEnd(Buffer.from('abc\r\n.\r'), '\r\n.\r\n')).toBe(4);
    expect(findPrefixAtEnd(Buffer.from('qq'), Buffer.from('qqq'))).toBe(2);
    expect(findPrefixAtEnd('', '\r\n')).toBe(0);
    expect(findPrefixAtEnd('abc', '')).toBe(0);
    expect(() => {
      Reflect.apply(findPrefixAtEnd, undefined, [5, 'x']);
    }).toThrow(TypeError);
  });

  it('setTerminator refuses a negative count and values of the wrong type', () => {
    const chat = new AsyncChat(null, map);
    expect(() => chat.setTerminator(-1)).toThrow(RangeError);
    expect(() => chat.setTerminator(1.5)).toThrow(RangeError);
    expect(() => callUntyped(chat, 'setTerminator', {})).toThrow(TypeError);
    expect(() => callUntyped(chat, 'setTerminator', undefined)).toThrow(TypeError);
    expect(chat.getTerminator()).toBeNull();
    chat.setTerminator('\r\n');
    expect(chat.getTerminator()).toBe('\r\n');
    chat.setTerminator(12);
    expect(chat.getTerminator()).toBe(12);
  });

  it('keeps its own copy of a Uint8Array terminator, as Python bytes are immutable', () => {
    const [ours, theirs] = socketpair();
    const lines: string[] = [];
    const chat = new (class extends AsyncChat {
      #chunks: Buffer[] = [];
      override collectIncomingData(data: Buffer): void {
        this.#chunks.push(data);
      }
      override foundTerminator(): void {
        lines.push(Buffer.concat(this.#chunks).toString());
        this.#chunks = [];
      }
    })(ours, map);
    const term = Buffer.from('\r\n');
    chat.setTerminator(term);
    term.fill('A');
    theirs.send('oneAAtwo\r\nthree\r\n');
    chat.handleRead();
    expect(lines).toEqual(['oneAAtwo', 'three']);
    theirs.close();
  });

  it('has Python defaults', () => {
    const chat = new AsyncChat(null, map);
    expect(chat.acInBufferSize).toBe(65536);
    expect(chat.acOutBufferSize).toBe(65536);
    expect(chat.useEncoding).toBe(false);
    expect(chat.encoding).toBe('latin1');
    expect(chat.maxIncomingBuffer).toBe(16 * 1024 * 1024);
    expect(chat.readable()).toBe(true);
    // Not connected: writable until it is, so that the connect event is seen.
    expect(chat.writable()).toBe(true);
  });

  it('SimpleProducer hands out its data in bufferSize pieces, then empty ones', () => {
    const producer = new SimpleProducer(Buffer.from('abcdefghij'), 4);
    const pieces = [producer.more(), producer.more(), producer.more(), producer.more()];
    expect(pieces.map((p) => Buffer.from(p).toString())).toEqual(['abcd', 'efgh', 'ij', '']);
    expect(new SimpleProducer('x'.repeat(600)).more()).toHaveLength(512);
    expect(() => new SimpleProducer('x', 0)).toThrow(RangeError);
  });

  it('handleRead() with nothing to read is a spurious wake-up, not an error', () => {
    const [ours, theirs] = socketpair();
    const errors: unknown[] = [];
    const chat = new (class extends AsyncChat {
      override handleError(err: unknown): void {
        errors.push(err);
      }
    })(ours, map);
    chat.handleRead();
    expect(errors).toEqual([]);
    expect(chat.fileno()).not.toBeNull();
    theirs.close();
  });

  it('the abstract collectIncomingData()/foundTerminator() say they must be overridden', () => {
    const [ours, theirs] = socketpair();
    const chat = new AsyncChat(ours, map);
    chat.setTerminator('\n');
    theirs.send('a line\n');
    expect(() => chat.handleRead()).toThrow(/must implement collectIncomingData/);
    expect(() => chat.foundTerminator()).toThrow(/must implement foundTerminator/);
    theirs.close();
  });

  it('pushWithProducer refuses what is not a producer', () => {
    const chat = new AsyncChat(null, map);
    expect(() => callUntyped(chat, 'pushWithProducer', {})).toThrow(TypeError);
    expect(() => callUntyped(chat, 'pushWithProducer', 'text')).toThrow(TypeError);
  });
});

describe('AsyncChat under loop(): interest that changes outside a handler', () => {
  let map: SocketMap = new Map();
  afterEach(() => {
    closeAll(map);
    map = new Map();
  });

  it('closeWhenDone() from a timer wakes a loop() that waits with a 30 s timeout', async () => {
    const [ours, theirs] = socketpair();
    const chat = new EchoClientOnSocket(ours, map);
    const peer = new EchoConnection(theirs, map, 1, true);
    const running = loop({ map, backend: 'poll', timeout: 30 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The fifo is empty, so writable() was false and the thread waits for reads only; nothing
    // else happens on either socket, so only interestChanged() can make the loop ask again.
    chat.closeWhenDone();
    let safetyNet: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      running.then(() => 'loop ended'),
      new Promise((resolve) => (safetyNet = setTimeout(() => resolve('still waiting after 10 s'), 10_000))),
    ]);
    clearTimeout(safetyNet);
    expect(outcome).toBe('loop ended');
    expect(chat.fileno()).toBeNull();
    expect(peer.received.length).toBe(0);
  });

  it('push() from a timer that fills the socket makes loop() wait for writability', async () => {
    const [ours, theirs] = socketpair();
    const chat = new EchoClientOnSocket(ours, map);
    const running = loop({ map, backend: BACKENDS.includes('epoll') ? 'epoll' : 'poll', timeout: 30 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // More than the socket buffers hold: the rest waits in the fifo for write events, which
    // the thread only watches for if push() told it that writable() changed.
    const data = Buffer.alloc(4 << 20, 'z');
    chat.push(data);
    chat.closeWhenDone();
    // The reading end is not in the map: draining it causes no loop turn by itself.
    let received = 0;
    const drain = (): boolean => {
      for (;;) {
        let chunk: Buffer;
        try {
          chunk = theirs.recv(1 << 20);
        } catch {
          return false; // EAGAIN: nothing more for now
        }
        if (chunk.length === 0) return true;
        received += chunk.length;
      }
    };
    const reader = setInterval(drain, 5);
    let safetyNet: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      running.then(() => 'loop ended'),
      new Promise((resolve) => (safetyNet = setTimeout(() => resolve('still waiting after 10 s'), 10_000))),
    ]);
    clearTimeout(safetyNet);
    clearInterval(reader);
    // The channel is closed: what it sent last is still in the socket, then EOF.
    const sawEof = drain();
    theirs.close();
    expect(outcome).toBe('loop ended');
    expect(sawEof).toBe(true);
    expect(received).toBe(data.length);
  });
});

class EchoClientOnSocket extends AsyncChat {
  override collectIncomingData(): void {}
  override foundTerminator(): void {}
}
