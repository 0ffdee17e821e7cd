// Properties of AsyncChat's framing: however a stream is cut into reads, the messages that
// foundTerminator() sees are the same as for one big read, and the same as a plain reference
// splitter. Parsing is driven deterministically: ScriptedChat's recv() returns the next chunk
// of a list, so no timing is involved. One smaller run goes through real sockets.
import fc from 'fast-check';
import {
  AsyncChat,
  Dispatcher,
  SimpleProducer,
  type Socket,
  type SocketMap,
  type Terminator,
  closeAll,
  loop,
  loopSync,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

/** What a parse produced: the messages, and the error that ended it, if any. */
interface Parse {
  messages: string[];
  emptyChunks: number;
  error: string | null;
}

/**
 * An AsyncChat whose "socket" is a list of chunks. After each terminator it moves to the
 * next terminator of `script` (cycling), so protocols that switch between line and byte-count
 * framing are covered too.
 */
class ScriptedChat extends AsyncChat {
  readonly result: Parse = { messages: [], emptyChunks: 0, error: null };
  #chunks: Buffer[];
  #step = 0;
  #collected: Buffer[] = [];

  constructor(
    chunks: Buffer[],
    readonly script: Terminator[],
    map: SocketMap,
  ) {
    super(null, map);
    this.#chunks = [...chunks];
    this.setTerminator(script[0] ?? null);
  }

  /** Feeds every chunk through handleRead(), as the loop would on each read event. */
  run(): Parse {
    while (this.#chunks.length > 0 && this.result.error === null) this.handleRead();
    return this.result;
  }

  override recv(n: number): Buffer {
    const next = this.#chunks.shift() ?? Buffer.alloc(0);
    if (next.length > n) this.#chunks.unshift(next.subarray(n));
    return next.subarray(0, n);
  }

  override collectIncomingData(data: Buffer): void {
    if (data.length === 0) this.result.emptyChunks++;
    this.#collected.push(data);
  }

  override foundTerminator(): void {
    this.result.messages.push(Buffer.concat(this.#collected).toString('latin1'));
    this.#collected = [];
    this.#step++;
    this.setTerminator(this.script[this.#step % this.script.length] ?? null);
  }

  override handleError(err: unknown): void {
    this.result.error = err instanceof Error ? err.message : String(err);
  }
}

/** Cuts data at the given (sorted, deduplicated) offsets. */
function cut(data: Buffer, offsets: number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => o % (data.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    if (point > start) chunks.push(data.subarray(start, point));
    start = Math.max(start, point);
  }
  if (start < data.length) chunks.push(data.subarray(start));
  return chunks;
}

/** The reference: leftmost, non-overlapping occurrences of one terminator. */
function splitAll(stream: Buffer, term: Buffer): string[] {
  const messages: string[] = [];
  let start = 0;
  for (let i = 0; i + term.length <= stream.length;) {
    if (stream.subarray(i, i + term.length).equals(term)) {
      messages.push(stream.subarray(start, i).toString('latin1'));
      i += term.length;
      start = i;
    } else {
      i++;
    }
  }
  return messages;
}

// A small alphabet makes terminators, their prefixes and overlaps ("aab" in "aaab") common.
const byte = fc.constantFrom(0x61, 0x62, 0x0d, 0x0a, 0x2e);
const bytes = (max: number): fc.Arbitrary<Buffer> => fc.array(byte, { maxLength: max }).map((a) => Buffer.from(a));
/** Up to `count` messages of up to `size` bytes each. */
const messages = (size: number, count: number): fc.Arbitrary<Buffer[]> => fc.array(bytes(size), { maxLength: count });
const stringTerminator = fc.array(byte, { minLength: 1, maxLength: 5 }).map((a) => Buffer.from(a));
const terminator: fc.Arbitrary<Terminator> = fc.oneof(
  stringTerminator,
  stringTerminator.map((b) => b.toString('latin1')),
  fc.integer({ min: 1, max: 40 }),
);
const offsets = fc.array(fc.nat(), { maxLength: 40 });

let map: SocketMap = new Map();
afterEach(() => {
  closeAll(map);
  map = new Map();
});

describe('AsyncChat framing, driven chunk by chunk', () => {
  it('any chunking gives the messages of one big read, for any terminator script', () => {
    fc.assert(
      fc.property(bytes(300), fc.array(terminator, { minLength: 1, maxLength: 4 }), offsets, (stream, script, cuts) => {
        const whole = new ScriptedChat([stream], script, map).run();
        const pieces = new ScriptedChat(cut(stream, cuts), script, map).run();
        expect(pieces).toEqual(whole);
        expect(whole.emptyChunks).toBe(0);
      }),
      { numRuns: 400 },
    );
  });

  it('with one terminator, the messages are the leftmost occurrences, as a plain splitter finds them', () => {
    fc.assert(
      fc.property(messages(30, 12), stringTerminator, bytes(10), offsets, (parts, term, tail, cuts) => {
        const stream = Buffer.concat([...parts.flatMap((p) => [p, term]), tail]);
        const expected = splitAll(stream, term);
        expect(new ScriptedChat([stream], [term], map).run().messages).toEqual(expected);
        expect(new ScriptedChat(cut(stream, cuts), [term], map).run().messages).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });

  it('a length-prefixed protocol ("<n>\\n" then n bytes) reads back every record', () => {
    fc.assert(
      fc.property(messages(50, 10), offsets, fc.integer({ min: 1, max: 64 }), (records, cuts, readSize) => {
        const stream = Buffer.concat(records.flatMap((r) => [Buffer.from(`${r.length}\n`), r]));
        const chat = new (class extends ScriptedChat {
          #header = true;
          override foundTerminator(): void {
            super.foundTerminator();
            const last = this.result.messages.at(-1) ?? '';
            this.#header = !this.#header;
            // A zero-length record is "no terminator" to AsyncChat: it has nothing to wait for.
            if (!this.#header && Number(last) === 0) {
              this.result.messages.push('');
              this.#header = true;
            }
            this.setTerminator(this.#header ? '\n' : Number(last));
          }
        })(cut(stream, cuts), ['\n'], map);
        chat.acInBufferSize = readSize;
        const bodies = chat.run().messages.filter((_, i) => i % 2 === 1);
        expect(bodies).toEqual(records.map((r) => r.toString('latin1')));
      }),
      { numRuns: 300 },
    );
  });

  it('maxIncomingBuffer stops the parse at the first message longer than the bound, however it is cut', () => {
    fc.assert(
      fc.property(messages(40, 10), fc.integer({ min: 1, max: 30 }), offsets, (parts, bound, cuts) => {
        const term = Buffer.from('\r\n');
        const stream = Buffer.concat(parts.flatMap((p) => [p, term]));
        const messages = splitAll(stream, term);
        const firstTooLong = messages.findIndex((m) => m.length > bound);
        for (const chunks of [[stream], cut(stream, cuts)]) {
          const chat = new ScriptedChat(chunks, [term], map);
          chat.maxIncomingBuffer = bound;
          const result = chat.run();
          if (firstTooLong === -1) {
            expect(result.error).toBeNull();
            expect(result.messages).toEqual(messages);
          } else {
            expect(result.error).toMatch(/maxIncomingBuffer/);
            expect(result.messages).toEqual(messages.slice(0, firstTooLong));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** Records what initiateSend() hands to send(), taking as much as `socketRoom` says each time. */
class RecordingChat extends AsyncChat {
  readonly wire: Buffer[] = [];
  closedAfter = -1;
  largestSend = 0;
  #call = 0;

  constructor(
    readonly socketRoom: number[],
    map: SocketMap,
  ) {
    super(null, map);
    this.connected = true;
  }

  override send(data: Uint8Array): number {
    this.largestSend = Math.max(this.largestSend, data.length);
    const room = this.socketRoom[this.#call++ % this.socketRoom.length] ?? 0;
    const taken = Math.min(room, data.length);
    this.wire.push(Buffer.from(data.subarray(0, taken)));
    return taken;
  }

  override handleClose(): void {
    this.closedAfter = Buffer.concat(this.wire).length;
    this.connected = false;
  }
}

/** A producer that hands out strings, to check they are encoded with `encoding`. */
class TextProducer {
  #pieces: string[];
  constructor(pieces: string[]) {
    this.#pieces = [...pieces];
  }
  more(): string {
    return this.#pieces.shift() ?? '';
  }
}

describe('AsyncChat output, driven write event by write event', () => {
  const payload = fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a));
  const operation = fc.oneof(
    payload.map((data) => ({ kind: 'push' as const, data })),
    fc
      .tuple(payload, fc.integer({ min: 1, max: 700 }))
      .map(([data, size]) => ({ kind: 'simple' as const, data, size })),
    fc
      .array(fc.string({ unit: 'binary-ascii', maxLength: 50 }), { maxLength: 5 })
      .map((texts) => ({ kind: 'text' as const, texts })),
  );

  it('sends exactly what was pushed, in order, then closes when asked', () => {
    fc.assert(
      fc.property(
        fc.array(operation, { maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 1024 }),
        (operations, accept, outBufferSize) => {
          // Every few calls the socket takes something, so the fifo always drains.
          const chat = new RecordingChat([...accept, 1], map);
          chat.acOutBufferSize = outBufferSize;
          const expected: Buffer[] = [];
          for (const op of operations) {
            if (op.kind === 'push') {
              chat.push(op.data);
              expected.push(op.data);
            } else if (op.kind === 'simple') {
              chat.pushWithProducer(new SimpleProducer(op.data, op.size));
              expected.push(op.data);
            } else {
              // An empty piece ends a producer, so only the texts before the first empty one count.
              const end = op.texts.indexOf('');
              const texts = end === -1 ? op.texts : op.texts.slice(0, end);
              chat.pushWithProducer(new TextProducer(op.texts));
              expected.push(Buffer.from(texts.join(''), 'latin1'));
            }
          }
          chat.closeWhenDone();
          for (let events = 0; chat.writable() && chat.connected && events < 100_000; events++) chat.handleWrite();
          const sent = Buffer.concat(chat.wire);
          expect(sent.equals(Buffer.concat(expected))).toBe(true);
          expect(chat.closedAfter).toBe(sent.length);
          expect(chat.largestSend).toBeLessThanOrEqual(outBufferSize);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** Sends `stream` in the given chunk sizes, one send() per write event, then closes. */
class ChunkedWriter extends Dispatcher {
  #offset = 0;
  #sizes: number[];

  constructor(
    sock: Socket,
    map: SocketMap,
    readonly stream: Buffer,
    sizes: number[],
  ) {
    super(sock, map);
    this.#sizes = sizes.length > 0 ? sizes : [stream.length];
  }

  override readable(): boolean {
    return false;
  }

  override handleWrite(): void {
    if (this.#offset < this.stream.length) {
      const size = this.#sizes[0] ?? 1;
      this.#sizes.push(this.#sizes.shift() ?? 1);
      this.#offset += this.send(this.stream.subarray(this.#offset, this.#offset + size));
    }
    if (this.#offset >= this.stream.length) this.close();
  }
}

class LineReader extends AsyncChat {
  messages: string[] = [];
  #collected: Buffer[] = [];

  override collectIncomingData(data: Buffer): void {
    this.#collected.push(data);
  }

  override foundTerminator(): void {
    this.messages.push(Buffer.concat(this.#collected).toString('latin1'));
    this.#collected = [];
  }
}

describe('AsyncChat framing through a real socket', () => {
  it('finds the same messages however the writer cuts the stream', async () => {
    await fc.assert(
      fc.asyncProperty(
        messages(200, 30),
        stringTerminator,
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom('sync', 'thread'),
        async (parts, term, sizes, mode) => {
          const stream = Buffer.concat(parts.flatMap((p) => [p, term]));
          const [ours, theirs] = socketpair();
          const reader = new LineReader(ours, map);
          reader.setTerminator(term);
          reader.acInBufferSize = 64;
          new ChunkedWriter(theirs, map, stream, sizes);
          const options = { map, backend: 'poll' as const, timeout: 0.05, count: 20_000 };
          if (mode === 'sync') loopSync(options);
          else await loop(options);
          expect(map.size).toBe(0);
          expect(reader.messages).toEqual(splitAll(stream, term));
        },
      ),
      { numRuns: 25 },
    );
  });
});
