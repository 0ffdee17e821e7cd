// What recv() returns belongs to the caller: small receives are views of a shared slab and
// large ones are copies out of a shared scratch buffer, and neither may be overwritten by any
// later receive, on this socket or another. The binding's recvInto never writes past the end
// of the buffer it is given, whatever offset and length it is asked for, and neither does its
// hot path (recv and send with their integers in shared slots) whatever the slots hold; the
// reactors write no more ready fds than their registered array holds.
import { join } from 'node:path';

import { AF_UNIX, SOCK_STREAM, type Socket, socketpair } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { native } from '../src/binding.js';
import { BEST_BACKEND, DIST, ROOT, run } from './helpers.js';

const opened: Socket[] = [];

function pair(): [Socket, Socket] {
  const [a, b] = socketpair(AF_UNIX, SOCK_STREAM);
  opened.push(a, b);
  a.setBlocking(false);
  b.setBlocking(false);
  return [a, b];
}

afterEach(() => {
  for (const sock of opened.splice(0)) sock.close();
});

/** `length` bytes of a pattern that differs for every chunk number. */
function chunk(n: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (n * 31 + i) & 0xff;
  return bytes;
}

describe('recv() results stay valid', () => {
  it('keeps every small receive intact across many later receives on two sockets', () => {
    const [a, b] = pair();
    const [c, d] = pair();
    const kept: { got: Buffer; want: Buffer }[] = [];
    // 2,000 receives of 61 to 125 bytes: several slabs' worth, so slabs are replaced while
    // earlier results are still held.
    for (let n = 0; n < 2000; n++) {
      const want = chunk(n, 61 + (n % 65));
      const [tx, rx] = n % 2 === 0 ? [a, b] : [c, d];
      expect(tx.send(want)).toBe(want.length);
      const got = rx.recv(8192);
      expect(got.length).toBe(want.length);
      kept.push({ got, want });
    }
    for (const { got, want } of kept) expect(got.equals(want)).toBe(true);
  });

  it('a caller that writes into a received Buffer changes no other result', () => {
    const [a, b] = pair();
    a.send(chunk(1, 100));
    const first = b.recv(8192);
    a.send(chunk(2, 100));
    const second = b.recv(8192);
    first.fill(0xee);
    expect(second.equals(chunk(2, 100))).toBe(true);
  });

  it('a large receive holds only what arrived: a slab piece when it fits, a copy of exactly its bytes when not', () => {
    const [a, b] = pair();
    a.send(chunk(3, 64));
    const got = b.recv(65536);
    expect(got.length).toBe(64);
    expect(got.buffer.byteLength).toBeLessThan(65536);
    a.send(chunk(4, 64));
    b.recv(65536);
    expect(got.equals(chunk(3, 64))).toBe(true);
    // More than a slab holds: a Buffer of exactly those bytes, which later receives leave alone.
    const big = chunk(5, 40_000);
    expect(a.send(big)).toBe(big.length);
    const large = b.recv(65536);
    expect(large.length).toBe(big.length);
    expect(large.buffer.byteLength).toBe(big.length);
    a.send(chunk(6, 40_000));
    b.recv(65536);
    expect(large.equals(big)).toBe(true);
  });

  it('an empty receive at EOF is an empty Buffer', () => {
    const [a, b] = pair();
    a.close();
    expect(b.recv(100).length).toBe(0);
  });
});

describe("the binding's recvInto", () => {
  it('writes at the offset and never past the end of the buffer', () => {
    const [a, b] = pair();
    a.send(chunk(5, 200));
    const buffer = Buffer.alloc(16, 0x55);
    // Asks for 100 bytes at offset 12: only 4 fit.
    expect(native.recvInto(b.fileno(), buffer, 100, 0, 12)).toBe(4);
    expect(buffer.subarray(0, 12).every((byte) => byte === 0x55)).toBe(true);
    expect(buffer.subarray(12).equals(chunk(5, 200).subarray(0, 4))).toBe(true);
    // An offset past the end receives nothing (and leaves the bytes queued).
    expect(native.recvInto(b.fileno(), buffer, 100, 0, 1000)).toBe(0);
    expect(b.recv(8192).equals(chunk(5, 200).subarray(4))).toBe(true);
  });

  it('rejects an offset that is not a number', () => {
    const [, b] = pair();
    expect(() => native.recvInto(b.fileno(), Buffer.alloc(4), 4, 0, 'x' as unknown as number)).toThrow(TypeError);
  });
});

describe("the binding's hot path", () => {
  it('never receives outside the registered slab and scratch, whatever the slots hold, and rejects bad arguments', async () => {
    const result = await run(
      process.execPath,
      [join(ROOT, 'test', 'fixtures', 'hot-path.mjs'), join(DIST, 'binding.js')],
      {
        timeoutMs: 30_000,
      },
    );
    expect(result.stderr).toBe('');
    const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
    expect(JSON.parse(result.stdout)).toEqual({
      negativeOffset: 16,
      nearEnd: 16,
      fits: 20,
      pastEnd: 16,
      negativeLength: 0,
      badFd: -9,
      guardsIntact: true,
      // Bytes 0-15 moved in at 0, then 32-51 received at 10; the last 2 never written.
      slab: [...range(0, 10), ...range(32, 52), 0xee, 0xee],
      // The last receive that stayed there: bytes 52-67 (16-31 were overwritten).
      scratch: range(52, 68),
      sendString: 'TypeError',
      sendFloats: 'TypeError',
      slabOfFloats: 'TypeError',
      slabMissing: 'TypeError',
      scratchOfFloats: 'TypeError',
      sent: 3,
    });
  });
});

// The reactors write ready fds to an Int32Array registered once (setReadyArray), not passed on
// every wait: never more pairs than it holds, and nothing but an Int32Array is taken.
describe("the binding's ready arrays", () => {
  const POLLIN = native.constants.POLLIN;

  it('hold what fits, take a larger array when registered again, and refuse anything else', () => {
    const [a, b] = pair();
    const [c, d] = pair();
    a.send(Buffer.from('x'));
    c.send(Buffer.from('y'));
    const reactor = new native.Reactor('poll');
    try {
      for (const bad of [new Uint32Array(4), Buffer.alloc(16), 4, undefined]) {
        expect(() => reactor.setReadyArray(bad as unknown as Int32Array)).toThrow(TypeError);
      }
      expect(reactor.setInterest(b.fileno(), POLLIN)).toBe(0);
      expect(reactor.setInterest(d.fileno(), POLLIN)).toBe(0);
      // Room for one pair and a guard after it.
      const small = new Int32Array(3).fill(-7);
      reactor.setReadyArray(small.subarray(0, 2));
      expect(reactor.poll(0)).toBe(1);
      expect([b.fileno(), d.fileno()]).toContain(small[0]);
      expect((small[1] as number) & POLLIN).toBe(POLLIN);
      expect(small[2]).toBe(-7);
      const large = new Int32Array(8);
      reactor.setReadyArray(large);
      expect(reactor.poll(0)).toBe(2);
      expect([large[0], large[2]].sort()).toEqual([b.fileno(), d.fileno()].sort());
    } finally {
      reactor.close();
    }
  });

  it("fill loop()'s batches before its callback runs", async () => {
    const [a, b] = pair();
    a.send(Buffer.from('x'));
    const ready = new Int32Array(4);
    let seen: number[] = [];
    const batch = new Promise<void>((resolve) => {
      const thread = new native.ThreadLoop(BEST_BACKEND, (result: number) => {
        seen = [result, ready[0] as number, (ready[1] as number) & POLLIN];
        thread.stop();
        resolve();
      });
      expect(() => thread.setReadyArray(new Float64Array(4) as unknown as Int32Array)).toThrow(TypeError);
      thread.setReadyArray(ready);
      expect(thread.setInterest(b.fileno(), POLLIN)).toBe(0);
      thread.resume(5000);
    });
    await batch;
    expect(seen).toEqual([1, b.fileno(), POLLIN]);
  });
});
