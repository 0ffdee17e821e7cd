// AsyncChat's bounds: settings validated when set, reading and parsing paused while the
// output is over maxOutgoingBuffer / maxOutgoingProducers (readable() false, reported with
// interestChanged()), resumed when the peer drains it; nothing parsed or answered after
// close(); producers opened lazily by their own more() and closed with the channel; output
// queued at EOF flushed before the channel closes. Real socketpairs, every backend, both loops.
import { AsyncChat, type Producer, type Socket, type SocketMap, closeAll, loop, loopSync, socketpair } from 'asyncore';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { BACKENDS, MODES, type Mode } from './helpers.js';

const maps: SocketMap[] = [];
const sockets: Socket[] = [];

afterEach(() => {
  for (const map of maps.splice(0)) closeAll(map);
  for (const sock of sockets.splice(0)) sock.close();
});

function newMap(): SocketMap {
  const map: SocketMap = new Map();
  maps.push(map);
  return map;
}

/**
 * Reads what a non-blocking socket holds now (until it would block, or to EOF): how many bytes,
 * and whether the peer's EOF came.
 */
function drain(sock: Socket): { bytes: number; eof: boolean } {
  let bytes = 0;
  for (;;) {
    let got: Buffer;
    try {
      got = sock.recv(1 << 20);
    } catch {
      return { bytes, eof: false };
    }
    if (got.length === 0) return { bytes, eof: true };
    bytes += got.length;
  }
}

/** Answers each line "GET" with `reply`, as a producer or as bytes; counts what it parsed. */
class LineServer extends AsyncChat {
  parsed = 0;
  constructor(
    sock: Socket,
    map: SocketMap,
    readonly reply: () => Producer | Buffer,
  ) {
    super(sock, map);
    this.setTerminator('\n');
  }
  override collectIncomingData(data: Buffer): void {
    this.collectIntoIncoming(data);
  }
  override foundTerminator(): void {
    this.takeIncoming();
    this.parsed++;
    const reply = this.reply();
    if (reply instanceof Buffer) this.push(reply);
    else this.pushWithProducer(reply);
  }
}

/** A producer that counts how it is opened, asked and closed. */
class CountingProducer implements Producer {
  static opened = 0;
  static closed = 0;
  #open = false;
  #left: number;
  constructor(size: number) {
    this.#left = size;
  }
  more(): Uint8Array {
    if (!this.#open) {
      this.#open = true;
      CountingProducer.opened++;
    }
    const n = Math.min(this.#left, 1000);
    this.#left -= n;
    return Buffer.alloc(n, 0x61);
  }
  close(): void {
    if (this.#open) CountingProducer.closed++;
    this.#open = false;
  }
}

async function runLoop(mode: Mode, map: SocketMap, backend: string, count: number): Promise<void> {
  const options = { map, backend: backend as 'select', timeout: 0.05, count };
  if (mode === 'sync') loopSync(options);
  else await loop(options);
}

describe('settings are validated when set', () => {
  const chat = (): AsyncChat => new AsyncChat(null, newMap());

  it.each(['acInBufferSize', 'acOutBufferSize', 'maxOutgoingBuffer', 'maxOutgoingProducers'] as const)(
    '%s takes positive integers only',
    (name) => {
      const c = chat();
      for (const bad of [0, -1, 1.5, NaN, -Infinity]) expect(() => (c[name] = bad)).toThrow(RangeError);
      for (const bad of ['1', null, undefined, {}]) expect(() => Reflect.set(c, name, bad)).toThrow(TypeError);
      c[name] = 4096;
      expect(c[name]).toBe(4096);
    },
  );

  it('acInBufferSize and acOutBufferSize refuse Infinity; the output bounds take it', () => {
    const c = chat();
    expect(() => (c.acInBufferSize = Infinity)).toThrow(RangeError);
    expect(() => (c.acOutBufferSize = Infinity)).toThrow(RangeError);
    c.maxOutgoingBuffer = Infinity;
    c.maxOutgoingProducers = Infinity;
    expect(c.maxOutgoingBuffer).toBe(Infinity);
  });

  it('maxIncomingBuffer takes a positive number or Infinity; NaN and 0 throw', () => {
    const c = chat();
    for (const bad of [0, -5, NaN, -Infinity]) expect(() => (c.maxIncomingBuffer = bad)).toThrow(RangeError);
    expect(() => Reflect.set(c, 'maxIncomingBuffer', '1')).toThrow(TypeError);
    c.maxIncomingBuffer = Infinity;
    expect(c.maxIncomingBuffer).toBe(Infinity);
    c.maxIncomingBuffer = 10.5;
    expect(c.maxIncomingBuffer).toBe(10.5);
  });

  it('has the documented defaults', () => {
    const c = chat();
    expect([c.acInBufferSize, c.acOutBufferSize, c.maxIncomingBuffer]).toEqual([65536, 65536, 16 * 1024 * 1024]);
    expect([c.maxOutgoingBuffer, c.maxOutgoingProducers]).toEqual([1024 * 1024, 64]);
  });
});

describe.each(BACKENDS)('back-pressure (%s)', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    it('stops reading above maxOutgoingBuffer, says so with interestChanged(), resumes as the peer reads', async () => {
      const map = newMap();
      const [a, b] = socketpair();
      sockets.push(b);
      const reply = Buffer.alloc(64 * 1024, 0x62);
      const server = new LineServer(a, map, () => reply);
      server.maxOutgoingBuffer = 256 * 1024;
      const changed = vi.spyOn(server, 'interestChanged');
      // 200 requests at once: 12.5 MiB of answers if all were parsed.
      b.setBlocking(true);
      b.send(Buffer.from('GET\n'.repeat(200)));
      // The peer reads nothing: the server parses until its output passes the bound, then stops.
      await runLoop(mode, map, backend, 20);
      expect(server.readable()).toBe(false);
      expect(changed).toHaveBeenCalled();
      const parsedWhileFull = server.parsed;
      expect(parsedWhileFull).toBeLessThan(200);
      await runLoop(mode, map, backend, 5);
      expect(server.parsed).toBe(parsedWhileFull);

      // The peer reads everything: every request is answered, and reading resumes.
      b.setBlocking(false);
      let received = 0;
      for (let round = 0; round < 2000 && received < 200 * reply.length; round++) {
        await runLoop(mode, map, backend, 1);
        received += drain(b).bytes;
      }
      expect(received).toBe(200 * reply.length);
      expect(server.parsed).toBe(200);
      expect(server.readable()).toBe(true);
    });

    it('counts queued producers too, opens each on its first more() and closes every one with the channel', async () => {
      CountingProducer.opened = 0;
      CountingProducer.closed = 0;
      const map = newMap();
      const [a, b] = socketpair();
      sockets.push(b);
      const server = new LineServer(a, map, () => new CountingProducer(10 * 1024 * 1024));
      server.maxOutgoingProducers = 4;
      b.setBlocking(true);
      b.send(Buffer.from('GET\n'.repeat(100)));
      await runLoop(mode, map, backend, 20);
      expect(server.readable()).toBe(false);
      // Four queued are allowed; the fifth stops the parse.
      expect(server.parsed).toBe(5);
      // Only the producer being sent holds its resource.
      expect(CountingProducer.opened).toBe(1);
      b.close();
      sockets.pop();
      await runLoop(mode, map, backend, 20);
      expect(map.size).toBe(0);
      expect(server.parsed).toBe(5);
      expect(CountingProducer.closed).toBe(CountingProducer.opened);
    });
  });
});

describe('after close()', () => {
  it('nothing more of a read is parsed or answered, and a push is ignored', () => {
    const map = newMap();
    const [a, b] = socketpair();
    sockets.push(b);
    const server = new LineServer(a, map, () => Buffer.from('ok\n'));
    const original = server.foundTerminator.bind(server);
    server.foundTerminator = (): void => {
      original();
      if (server.parsed === 3) server.close();
    };
    b.send(Buffer.from('GET\n'.repeat(50)));
    server.handleRead();
    expect(server.parsed).toBe(3);
    expect(server.readable()).toBe(false);
    expect(() => server.push(Buffer.from('late'))).not.toThrow();
    const late = new CountingProducer(10);
    CountingProducer.opened = 0;
    server.pushWithProducer(late);
    expect(CountingProducer.opened).toBe(0);
  });
});

describe.each(BACKENDS)('EOF with output queued (%s)', (backend) => {
  it('sends what is queued before closing, as closeWhenDone() would', () => {
    const map = newMap();
    const [a, b] = socketpair();
    sockets.push(b);
    const reply = Buffer.alloc(4 * 1024 * 1024, 0x63);
    const server = new LineServer(a, map, () => reply);
    b.setBlocking(true);
    b.send(Buffer.from('GET\n'));
    b.shutdown(1); // SHUT_WR: the peer is done sending, and still reads
    b.setBlocking(false);
    let received = 0;
    let eof = false;
    for (let round = 0; round < 5000 && !eof; round++) {
      if (map.size > 0) loopSync({ map, backend, timeout: 0.05, count: 1 });
      const got = drain(b);
      received += got.bytes;
      eof = got.eof;
    }
    expect(received).toBe(reply.length);
    expect(eof).toBe(true);
    expect(map.size).toBe(0);
    expect(server.fileno()).toBe(null);
  });

  it('closes at once at EOF when nothing is queued (Python)', () => {
    const map = newMap();
    const [a, b] = socketpair();
    sockets.push(b);
    const server = new LineServer(a, map, () => Buffer.alloc(0));
    b.shutdown(1);
    loopSync({ map, backend, timeout: 0.05, count: 3 });
    expect(map.size).toBe(0);
    expect(server.fileno()).toBe(null);
  });
});
