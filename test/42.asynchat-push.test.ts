// push() hands the caller's bytes to send() without copying them when nothing is queued
// (asyncore-http's replies are pushed from a cache), and copies whatever the socket did not
// take. Python's bytes are immutable, so whatever the caller does with its buffer after push()
// returns must never change what goes on the wire: these tests reuse the buffer at once.
import { AsyncChat, type Socket, type SocketMap, closeAll, loopSync, socketpair } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS } from './helpers.js';

/** The receiving side: keeps every byte, closes at EOF. */
class Collector extends AsyncChat {
  readonly chunks: Buffer[] = [];

  constructor(sock: Socket, map: SocketMap) {
    super(sock, map);
    this.setTerminator(null);
  }

  override collectIncomingData(data: Buffer): void {
    this.chunks.push(data);
  }

  override foundTerminator(): void {}

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The sending side: pushes, then closes once everything is sent. */
class Sender extends AsyncChat {
  override collectIncomingData(): void {}
  override foundTerminator(): void {}
}

const maps: SocketMap[] = [];
afterEach(() => {
  for (const map of maps.splice(0)) closeAll(map);
});

function pair(): { map: SocketMap; sender: Sender; collector: Collector } {
  const map: SocketMap = new Map();
  maps.push(map);
  const [a, b] = socketpair();
  return { map, sender: new Sender(a, map), collector: new Collector(b, map) };
}

/** Deterministic bytes that a zero fill cannot be mistaken for. */
function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = ((i * 31 + seed) % 251) + 1;
  return out;
}

describe.each(BACKENDS)('AsyncChat.push() on %s', (backend) => {
  function drain(map: SocketMap, collector: Collector, expected: number): void {
    for (let i = 0; i < 10_000 && collector.received().length < expected; i++) {
      loopSync({ map, backend, timeout: 1, count: 1 });
    }
  }

  it('sends a small buffer that fits the socket whole, and the caller may reuse it at once', () => {
    const { map, sender, collector } = pair();
    const first = pattern(300, 1);
    const expected = Buffer.from(first);
    sender.push(first);
    first.fill(0);
    sender.push(first); // the same buffer again, now zeros: a second, different message
    drain(map, collector, 600);
    expect(collector.received()).toEqual(Buffer.concat([expected, Buffer.alloc(300)]));
  });

  it('copies what the socket did not take, so reusing the buffer does not change the wire', () => {
    const { map, sender, collector } = pair();
    // Far more than a socketpair buffers: the first send() takes part, the rest is queued.
    const big = pattern(4 * 1024 * 1024, 7);
    const expected = Buffer.from(big);
    sender.push(big);
    big.fill(0);
    const tail = pattern(1000, 3);
    const expectedTail = Buffer.from(tail);
    sender.push(tail); // queued behind the rest of big: copied at once
    tail.fill(0);
    drain(map, collector, expected.length + expectedTail.length);
    const received = collector.received();
    expect(received.length).toBe(expected.length + expectedTail.length);
    expect(received.subarray(0, expected.length).equals(expected)).toBe(true);
    expect(received.subarray(expected.length).equals(expectedTail)).toBe(true);
  });

  it('copies a subarray of a larger buffer, not the rest of that buffer', () => {
    const { map, sender, collector } = pair();
    const whole = pattern(8 * 1024 * 1024, 11);
    const view = whole.subarray(1024, 1024 + 3 * 1024 * 1024);
    const expected = Buffer.from(view);
    sender.push(view);
    whole.fill(0);
    drain(map, collector, expected.length);
    expect(collector.received().equals(expected)).toBe(true);
  });
});
