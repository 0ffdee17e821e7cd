// AsyncChat, SimpleProducer and findPrefixAtEnd: Python's asynchat, translated.
//
// AsyncChat turns a byte stream into messages. Input: handleRead() reads what arrived,
// hands the bytes before the terminator to collectIncomingData() and calls foundTerminator()
// at each terminator; the terminator may change inside foundTerminator() (a header line,
// then a body of N bytes). Output: push() and pushWithProducer() queue data and producers in
// a fifo that handleWrite() drains, at most acOutBufferSize bytes per send.
//
// Differences from Python, all on the side of safety or speed:
// - maxIncomingBuffer bounds what one message may collect: past it the channel gets
//   handleError() and is closed, so a peer that never sends the terminator cannot use up
//   the memory.
// - The input buffer only ever keeps a partial terminator between reads, and queued data
//   is sliced with subarray(), never copied again: no O(n^2) concatenation.
// - push() copies only what it cannot send at once: with nothing queued it sends from the
//   caller's bytes and keeps a copy of the rest, so the caller may reuse its buffer as soon
//   as push() returns, as with Python's immutable bytes, and a small reply is never copied.
// - Strings are accepted as terminators and from producers, encoded with `encoding`;
//   push() takes strings only with useEncoding = true, as Python's test_push demands.
import { Buffer } from 'node:buffer';
import { Dispatcher, declareBuiltInPredicates } from './dispatcher.js';
import { SocketError, isWouldBlock } from './errors.js';
import { describe } from './socket.js';

/** A message delimiter: bytes (a string is encoded), a byte count, or null for "everything". */
export type Terminator = string | Uint8Array | number | null;

/**
 * Python's producer protocol: more() returns the next piece, empty when it is exhausted.
 *
 * A producer that holds a resource (an open file, say) should acquire it lazily, on its first
 * more(), and release it in close(): {@link AsyncChat} calls close() exactly once, when the producer
 * is exhausted, when its more() throws, or when the channel closes with the producer still queued.
 * So a reply queued behind a thousand others holds nothing until its turn comes, and nothing
 * outlives its channel.
 */
export interface Producer {
  /** The next piece of data; an empty one means the producer is exhausted. */
  more(): Uint8Array | string;
  /** Optional: releases what the producer holds. Called once by the channel that queued it. */
  close?(): void;
}

const EMPTY = Buffer.alloc(0);

/** The text as bytes; throws where Node would silently mangle characters the encoding lacks. */
function encodeText(text: string, encoding: BufferEncoding): Buffer {
  const limit = encoding === 'latin1' || encoding === 'binary' ? 0xff : encoding === 'ascii' ? 0x7f : Infinity;
  if (limit !== Infinity) {
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) > limit) {
        throw new RangeError(`'${encoding}' cannot encode ${JSON.stringify(text[i])} at position ${i}`);
      }
    }
  }
  return Buffer.from(text, encoding);
}

function asBytes(value: string | Uint8Array, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encodeText(value, 'latin1');
  throw new TypeError(`${what} must be a string or a Uint8Array, not ${describe(value)}`);
}

/** Whether haystack ends with the first `length` bytes of needle. */
function endsWithPrefix(haystack: Uint8Array, needle: Uint8Array, length: number): boolean {
  const start = haystack.length - length;
  if (start < 0) return false;
  for (let i = 0; i < length; i++) {
    if (haystack[start + i] !== needle[i]) return false;
  }
  return true;
}

/**
 * The length of the longest proper prefix of needle that haystack ends with (0 if none):
 * how much of a terminator may have arrived at the end of a read. Python's
 * find_prefix_at_end; it assumes the whole needle was already looked for.
 */
export function findPrefixAtEnd(haystack: string | Uint8Array, needle: string | Uint8Array): number {
  if (typeof haystack === 'string' && typeof needle === 'string') {
    let length = needle.length - 1;
    while (length > 0 && !haystack.endsWith(needle.slice(0, length))) length--;
    return Math.max(length, 0);
  }
  const hay = asBytes(haystack, 'haystack');
  const pin = asBytes(needle, 'needle');
  let length = pin.length - 1;
  while (length > 0 && !endsWithPrefix(hay, pin, length)) length--;
  return Math.max(length, 0);
}

/** Python's simple_producer: hands out `data` in pieces of at most bufferSize. */
export class SimpleProducer implements Producer {
  #data: Uint8Array | string;
  /** The largest piece {@link SimpleProducer.more} hands out. */
  readonly bufferSize: number;

  constructor(data: Uint8Array | string, bufferSize = 512) {
    if (!(data instanceof Uint8Array) && typeof data !== 'string') {
      throw new TypeError(`data must be a string or a Uint8Array, not ${describe(data)}`);
    }
    if (!Number.isInteger(bufferSize) || bufferSize <= 0) {
      throw new RangeError(`bufferSize must be a positive integer (got ${String(bufferSize)})`);
    }
    this.#data = data;
    this.bufferSize = bufferSize;
  }

  /**
   * The next piece, at most {@link SimpleProducer.bufferSize} long; an empty one once the data is used
   * up.
   */
  more(): Uint8Array | string {
    const data = this.#data;
    const size = Math.min(data.length, this.bufferSize);
    const result = typeof data === 'string' ? data.slice(0, size) : data.subarray(0, size);
    this.#data = typeof data === 'string' ? data.slice(size) : data.subarray(size);
    return result;
  }
}

/** What the output fifo holds: bytes, a producer, or null for "close when you get here". */
type OutgoingEntry = Uint8Array | Producer | null;

/**
 * Python's deque, as far as the fifo uses it: O(1) at both ends. The items are
 * #items[#head, #tail). An emptied deque keeps its array and starts again at 0 (after nearly
 * every reply): setting an array's length goes through V8's runtime, and the shrunk array
 * would have to grow again at the next push.
 */
class Deque<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  #tail = 0;

  get length(): number {
    return this.#tail - this.#head;
  }

  /** The first item; only call it when length > 0. */
  first(): T {
    return this.#items[this.#head] as T;
  }

  push(item: T): void {
    this.#items[this.#tail++] = item;
  }

  shift(): void {
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#tail) {
      this.#head = 0;
      this.#tail = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#tail) {
      this.#items = this.#items.slice(this.#head, this.#tail);
      this.#tail -= this.#head;
      this.#head = 0;
    }
  }

  unshift(item: T): void {
    if (this.#head > 0) {
      this.#items[--this.#head] = item;
    } else {
      this.#items.unshift(item);
      this.#tail++;
    }
  }

  replaceFirst(item: T): void {
    this.#items[this.#head] = item;
  }
}

/** Python's asynchat.async_chat. Override collectIncomingData() and foundTerminator(). */
export class AsyncChat extends Dispatcher {
  // The settings are accessors, so that a bad value throws when it is set; the channel reads
  // them through the public names, so a JavaScript subclass that redeclares one as a class
  // field (a plain property, which TypeScript refuses) still gets its value used.
  #acInBufferSize = 65536;
  #acOutBufferSize = 65536;
  #maxIncomingBuffer = 16 * 1024 * 1024;
  #maxOutgoingBuffer = 1024 * 1024;
  #maxOutgoingProducers = 64;

  /** Bytes asked of recv() per read event: a positive integer (TypeError/RangeError otherwise). */
  get acInBufferSize(): number {
    return this.#acInBufferSize;
  }
  /** Throws TypeError for a non-number, RangeError for anything but a positive integer. */
  set acInBufferSize(value: number) {
    this.#acInBufferSize = positiveInteger(value, 'acInBufferSize');
  }

  /** Bytes handed to send() per write event at most: a positive integer. */
  get acOutBufferSize(): number {
    return this.#acOutBufferSize;
  }
  /** Throws TypeError for a non-number, RangeError for anything but a positive integer. */
  set acOutBufferSize(value: number) {
    this.#acOutBufferSize = positiveInteger(value, 'acOutBufferSize');
  }

  /** When true, push() takes strings too, encoded with `encoding`. */
  useEncoding = false;
  /**
   * How strings become bytes: string terminators, strings from producers and, with `useEncoding`,
   * pushed strings (Python's `encoding`). The default `'latin1'` maps each character to one byte and
   * refuses characters above U+00FF.
   */
  encoding: BufferEncoding = 'latin1';
  /**
   * The most bytes one message may collect before its terminator (a string or numeric
   * one) arrives; past it the channel gets handleError() and is closed. A null terminator
   * ("everything is data") is not bounded: the subclass sees each chunk as it comes.
   * A positive number or Infinity (default 16 MiB).
   */
  get maxIncomingBuffer(): number {
    return this.#maxIncomingBuffer;
  }
  /** Throws TypeError for a non-number, RangeError for anything but a positive number or Infinity. */
  set maxIncomingBuffer(value: number) {
    if (typeof value !== 'number') throw new TypeError(`maxIncomingBuffer must be a number, not ${describe(value)}`);
    if (!(value > 0)) throw new RangeError(`maxIncomingBuffer must be positive or Infinity (got ${value})`);
    this.#maxIncomingBuffer = value;
  }

  /**
   * The output bound, in bytes (default 1 MiB): while more than this is queued to send, the
   * channel stops reading and stops parsing what it has read ({@link AsyncChat.readable} is
   * false), and resumes once the peer has taken enough. A peer that sends requests and never
   * reads the answers therefore costs at most about this much memory. A positive integer or
   * Infinity (Python's unbounded behaviour).
   */
  get maxOutgoingBuffer(): number {
    return this.#maxOutgoingBuffer;
  }
  /** Throws like acOutBufferSize, but takes Infinity; the loop hears at once if readable() changes. */
  set maxOutgoingBuffer(value: number) {
    this.#maxOutgoingBuffer = value === Infinity ? value : positiveInteger(value, 'maxOutgoingBuffer');
    this.#updateReadable();
  }

  /**
   * The same bound counted in queued producers (default 64): a producer's size is unknown
   * until it runs, so each one queued counts here. A positive integer or Infinity.
   */
  get maxOutgoingProducers(): number {
    return this.#maxOutgoingProducers;
  }
  /** Throws like acOutBufferSize, but takes Infinity; the loop hears at once if readable() changes. */
  set maxOutgoingProducers(value: number) {
    this.#maxOutgoingProducers = value === Infinity ? value : positiveInteger(value, 'maxOutgoingProducers');
    this.#updateReadable();
  }

  #terminator: Terminator = null;
  /** The last string/Uint8Array terminator and its bytes, so a read does not encode it again. */
  #terminatorSource: string | Uint8Array | null = null;
  #terminatorBytes: Uint8Array = EMPTY;
  /** What arrived but was not handed on: at most a partial terminator between reads. */
  #inBuffer: Buffer = EMPTY;
  /** Bytes given to collectIncomingData() since the last terminator. */
  #collected = 0;
  readonly #fifo = new Deque<OutgoingEntry>();
  /** Bytes of the Uint8Array entries of the fifo. */
  #queuedBytes = 0;
  /** Producer entries in the fifo. */
  #queuedProducers = 0;
  /** The last answer of readable() the loop was told about. */
  #lastReadable = true;
  /** EOF was read: nothing more will arrive. */
  #inputEnded = false;
  /** close() ran: nothing more is parsed, answered or sent. */
  #closed = false;
  /** Inside recv() from handleRead(): a handleClose() from there means EOF, not an error. */
  #readingEof = false;

  /** Python's `incoming`: filled by collectIntoIncoming(), emptied by takeIncoming(). */
  protected incoming: Buffer[] = [];

  // --- To override -------------------------------------------------------------------------

  /**
   * To override: called with each piece of data that arrives before the terminator (Python's
   * `collect_incoming_data`). The default throws; {@link AsyncChat.collectIntoIncoming} is a ready-made
   * body that keeps the pieces for {@link AsyncChat.takeIncoming}.
   */
  collectIncomingData(_data: Buffer): void {
    throw new Error(`${this.constructor.name} must implement collectIncomingData()`);
  }

  /**
   * To override: called each time the terminator arrives, after the data before it went to
   * {@link AsyncChat.collectIncomingData} (Python's `found_terminator`). It may call
   * {@link AsyncChat.setTerminator} to read what follows differently, say a header line and then a body
   * of N bytes. The default throws.
   */
  foundTerminator(): void {
    throw new Error(`${this.constructor.name} must implement foundTerminator()`);
  }

  /** Python's _collect_incoming_data: a collectIncomingData() that keeps the chunks. */
  protected collectIntoIncoming(data: Buffer): void {
    this.incoming.push(data);
  }

  /** Python's _get_data: the chunks collected so far, joined, and the list emptied. */
  protected takeIncoming(): Buffer {
    const data = this.incoming.length === 1 ? (this.incoming[0] as Buffer) : Buffer.concat(this.incoming);
    this.incoming = [];
    return data;
  }

  // --- The terminator ----------------------------------------------------------------------

  /**
   * Bytes (a string is encoded with `encoding`), a number of bytes to read, or null (0 and
   * empty bytes mean the same): everything that arrives goes to collectIncomingData().
   */
  setTerminator(term: Terminator): void {
    if (typeof term === 'number') {
      if (!Number.isInteger(term) || term < 0) {
        throw new RangeError(`the number of bytes to read must be a non-negative integer (got ${term})`);
      }
    } else if (term !== null && typeof term !== 'string' && !(term instanceof Uint8Array)) {
      throw new TypeError(`a terminator is a string, a Uint8Array, a number or null, not ${describe(term)}`);
    }
    if (typeof term === 'string' || term instanceof Uint8Array) this.#terminatorBytesOf(term);
    this.#terminator = term;
  }

  /** What setTerminator() was given; for a number, the bytes still to come. */
  getTerminator(): Terminator {
    return this.#terminator;
  }

  #terminatorBytesOf(term: string | Uint8Array): Uint8Array {
    if (term !== this.#terminatorSource) {
      // A copy, as Python's bytes are immutable: the caller may reuse its array.
      this.#terminatorBytes = typeof term === 'string' ? encodeText(term, this.encoding) : Buffer.from(term);
      this.#terminatorSource = term;
    }
    return this.#terminatorBytes;
  }

  // --- Input -------------------------------------------------------------------------------

  /**
   * True unless the output holds more than {@link AsyncChat.maxOutgoingBuffer} bytes or
   * {@link AsyncChat.maxOutgoingProducers} producers (Python: always true), after EOF, and after
   * close(). Every change of the answer is reported with interestChanged(). What one message
   * may collect is bounded by {@link AsyncChat.maxIncomingBuffer}.
   */
  override readable(): boolean {
    return !this.#closed && !this.#inputEnded && !this.#outputFull();
  }

  /** Whether the output holds more than the bounds allow: reading and parsing wait. */
  #outputFull(): boolean {
    return this.#queuedBytes > this.maxOutgoingBuffer || this.#queuedProducers > this.maxOutgoingProducers;
  }

  /** Tells the loop when readable() changed its answer (the predicates are built in). */
  #updateReadable(): void {
    const now = this.readable();
    if (now !== this.#lastReadable) {
      this.#lastReadable = now;
      this.interestChanged();
    }
  }

  /**
   * Reads up to {@link AsyncChat.acInBufferSize} bytes and splits them at the terminator: data goes to
   * {@link AsyncChat.collectIncomingData}, each terminator to {@link AsyncChat.foundTerminator}.
   */
  override handleRead(): void {
    // A read event that was already on its way when the output filled up, or after close().
    if (this.#closed || this.#inputEnded || this.#outputFull()) return;
    let data: Buffer;
    this.#readingEof = true;
    try {
      data = this.recv(this.acInBufferSize);
    } catch (err) {
      if (isWouldBlock(err)) return;
      if (err instanceof SocketError) {
        this.handleError(err);
        return;
      }
      throw err;
    } finally {
      this.#readingEof = false;
    }
    if (data.length === 0) return;
    this.#inBuffer = this.#inBuffer.length === 0 ? data : Buffer.concat([this.#inBuffer, data]);
    this.#splitIncoming();
  }

  /**
   * Python's handle_read loop: hands the buffered bytes to collectIncomingData() and calls
   * foundTerminator() at each terminator, re-reading the terminator after each one. It stops
   * when the channel closes (the rest is dropped) and while the output is over its bound
   * (the rest waits, and readable() is false, until the peer takes enough).
   */
  #splitIncoming(): void {
    while (this.#inBuffer.length > 0) {
      if (this.#closed) {
        this.#inBuffer = EMPTY;
        return;
      }
      if (this.#outputFull()) break;
      const buffer = this.#inBuffer;
      const terminator = this.getTerminator();
      if (terminator === null || terminator === 0 || (typeof terminator !== 'number' && terminator.length === 0)) {
        // No terminator: all of it is data.
        this.#inBuffer = EMPTY;
        this.collectIncomingData(buffer);
      } else if (typeof terminator === 'number') {
        if (buffer.length < terminator) {
          this.#inBuffer = EMPTY;
          this.#terminator = terminator - buffer.length;
          if (!this.#collect(buffer)) return;
        } else {
          this.#inBuffer = terminator === buffer.length ? EMPTY : buffer.subarray(terminator);
          this.#terminator = 0;
          if (!this.#collect(buffer.subarray(0, terminator))) return;
          this.#collected = 0;
          this.foundTerminator();
        }
      } else {
        const bytes = this.#terminatorBytesOf(terminator);
        const index = buffer.indexOf(bytes);
        if (index !== -1) {
          const rest = index + bytes.length;
          this.#inBuffer = rest === buffer.length ? EMPTY : buffer.subarray(rest);
          // An empty chunk is not reported (Python: "source of subtle bugs").
          if (index > 0 && !this.#collect(buffer.subarray(0, index))) return;
          this.#collected = 0;
          // The terminator may change in here; the loop reads it again.
          this.foundTerminator();
        } else {
          // Keep what may be the start of a terminator split across reads.
          const partial = findPrefixAtEnd(buffer, bytes);
          if (partial === buffer.length) break;
          this.#inBuffer = partial === 0 ? EMPTY : Buffer.from(buffer.subarray(buffer.length - partial));
          if (!this.#collect(buffer.subarray(0, buffer.length - partial))) return;
          if (partial > 0) break;
        }
      }
    }
  }

  /** collectIncomingData(), unless the message would pass maxIncomingBuffer: then false. */
  #collect(data: Buffer): boolean {
    if (this.#collected + data.length > this.maxIncomingBuffer) {
      const pending = this.#collected;
      this.#inBuffer = EMPTY;
      this.incoming = [];
      this.#collected = 0;
      this.handleError(
        new Error(
          `${this.constructor.name}: a message passed maxIncomingBuffer (${this.maxIncomingBuffer} bytes) ` +
            `before its terminator ${describeTerminator(this.#terminator)} arrived ` +
            `(${pending} bytes collected, ${data.length} more arrived); closing the channel`,
        ),
      );
      if (!this.#closed) this.close();
      return false;
    }
    this.#collected += data.length;
    this.collectIncomingData(data);
    return true;
  }

  // --- Output ------------------------------------------------------------------------------

  /** True while something is queued to send, and until connected. */
  override writable(): boolean {
    return this.#fifo.length > 0 || !this.connected;
  }

  /**
   * Sends the next piece of the queue ({@link AsyncChat.initiateSend}); once the output is back
   * under its bound, parses the input that waited for it.
   */
  override handleWrite(): void {
    this.initiateSend();
    if (!this.#closed && this.#inBuffer.length > 0 && !this.#outputFull()) this.#splitIncoming();
  }

  /**
   * Closes the channel, without the default's warning (as Python's `async_chat`). At EOF with
   * output still queued, the channel first sends it (a peer that half-closed still reads the
   * answers to what it sent), then closes, as after {@link AsyncChat.closeWhenDone}; Python
   * drops that output. With nothing queued, or after an error or a hang-up, it closes at once.
   */
  override handleClose(): void {
    if (this.#readingEof && !this.#closed && this.#fifo.length > 0 && this.connected) {
      this.#inputEnded = true;
      this.#inBuffer = EMPTY;
      this.closeWhenDone();
      this.#updateReadable();
      return;
    }
    this.close();
  }

  /**
   * Closes the socket, drops what was read and not parsed, and closes every producer still
   * queued (see {@link Producer.close}). Nothing is parsed, answered or sent afterwards.
   */
  override close(): void {
    this.#closed = true;
    this.#inBuffer = EMPTY;
    this.#clearFifo();
    try {
      super.close();
    } finally {
      this.#updateReadable();
    }
  }

  /** Empties the fifo, closing the producers in it. */
  #clearFifo(): void {
    const fifo = this.#fifo;
    let failure: Error | null = null;
    while (fifo.length > 0) {
      const entry = fifo.first();
      fifo.shift();
      if (entry !== null && !(entry instanceof Uint8Array)) {
        try {
          entry.close?.();
        } catch (err) {
          failure ??= err instanceof Error ? err : new Error(String(err));
        }
      }
    }
    this.#queuedBytes = 0;
    this.#queuedProducers = 0;
    // Every producer got its close(); the first failure is not swallowed.
    if (failure !== null) throw failure;
  }

  /** Queues bytes (strings too when useEncoding is set) and sends what the socket takes now. */
  push(data: Uint8Array | string): void {
    if (this.#closed) return;
    if (data instanceof Uint8Array) {
      if (this.#fifo.length > 0) {
        // A copy, as Python's bytes are immutable: the caller may reuse its buffer.
        this.#enqueue(Buffer.from(data));
      } else {
        // Nothing queued: send straight from the caller's bytes, and copy only what the
        // socket did not take. A reply that fits the socket is never copied.
        this.#enqueue(data);
        this.#copyFirstIfViewOf(data);
      }
    } else if (typeof data === 'string' && this.useEncoding) {
      this.#enqueue(encodeText(data, this.encoding));
    } else {
      const hint = typeof data === 'string' ? ' (set useEncoding = true to push strings)' : '';
      throw new TypeError(`push() takes a Buffer or Uint8Array${hint}, not ${describe(data)}`);
    }
  }

  /** Queues a producer: its more() is asked for data until it returns an empty piece. */
  pushWithProducer(producer: Producer | Uint8Array): void {
    const isProducer = typeof (producer as Partial<Producer> | null)?.more === 'function';
    if (!isProducer && !(producer instanceof Uint8Array)) {
      throw new TypeError(`pushWithProducer() takes an object with a more() method, not ${describe(producer)}`);
    }
    if (this.#closed) {
      // Nothing will ever be sent: the producer is released at once.
      if (!(producer instanceof Uint8Array)) producer.close?.();
      return;
    }
    this.#enqueue(producer);
  }

  /** Closes the channel once everything queued before this call is sent. */
  closeWhenDone(): void {
    if (this.#closed) return;
    const wasEmpty = this.#fifo.length === 0;
    this.#fifo.push(null);
    if (wasEmpty) this.interestChanged();
  }

  /** After push() queued the caller's own bytes: what is left of them becomes a private copy. */
  #copyFirstIfViewOf(data: Uint8Array): void {
    if (this.#fifo.length === 0) return;
    const first = this.#fifo.first();
    if (first instanceof Uint8Array && first.buffer === data.buffer) this.#fifo.replaceFirst(Buffer.from(first));
  }

  #enqueue(entry: Uint8Array | Producer): void {
    // A count, not a `length === 0` flag: TypeScript would narrow #fifo.length through the
    // flag and miss that initiateSend() below may empty the fifo again.
    const queuedBefore = this.#fifo.length;
    this.#fifo.push(entry);
    if (entry instanceof Uint8Array) this.#queuedBytes += entry.length;
    else this.#queuedProducers++;
    this.initiateSend();
    // writable() just turned true: a loop() waiting on its thread must hear of it now.
    if (queuedBefore === 0 && this.#fifo.length > 0) this.interestChanged();
    this.#updateReadable();
  }

  /** Retires the first entry of the fifo, keeping the counts. */
  #shiftFifo(): void {
    const first = this.#fifo.first();
    this.#fifo.shift();
    if (first instanceof Uint8Array) this.#queuedBytes -= first.length;
    else if (first !== null) this.#queuedProducers--;
  }

  /** Sends (some of) the first piece of the fifo, asking producers for data as needed. */
  initiateSend(): void {
    try {
      this.#sendSome();
    } finally {
      this.#updateReadable();
    }
  }

  #sendSome(): void {
    const fifo = this.#fifo;
    while (fifo.length > 0 && this.connected) {
      const first = fifo.first();
      if (first === null) {
        fifo.shift();
        this.handleClose();
        return;
      }
      if (!(first instanceof Uint8Array)) {
        // A producer: its next piece goes in front of it, an empty one retires it.
        let data: Uint8Array;
        try {
          data = this.#producedBytes(first.more());
        } catch (err) {
          this.#shiftFifo();
          first.close?.();
          throw err;
        }
        if (data.length > 0) {
          fifo.unshift(data);
          this.#queuedBytes += data.length;
        } else {
          this.#shiftFifo();
          first.close?.();
        }
        continue;
      }
      if (first.length === 0) {
        fifo.shift();
        continue;
      }
      const data = first.length > this.acOutBufferSize ? first.subarray(0, this.acOutBufferSize) : first;
      let sent: number;
      try {
        sent = this.send(data);
      } catch (err) {
        if (!(err instanceof SocketError)) throw err;
        this.handleError(err);
        return;
      }
      // send() may have closed the channel (a disconnect): the fifo is gone then.
      if (sent > 0 && !this.#closed) {
        this.#queuedBytes -= sent;
        if (sent < first.length) fifo.replaceFirst(first.subarray(sent));
        else fifo.shift();
      }
      // One send per call, as in Python: the next write event sends the next piece.
      return;
    }
  }

  #producedBytes(data: unknown): Uint8Array {
    if (data instanceof Uint8Array) return data;
    if (typeof data === 'string') return encodeText(data, this.encoding);
    // Python treats any false-ish value as the end of the producer.
    if (data === null || data === undefined) return EMPTY;
    throw new TypeError(`a producer's more() must return a string or a Uint8Array, not ${describe(data)}`);
  }

  /** Throws away everything queued in both directions (closing queued producers). Emergencies only. */
  discardBuffers(): void {
    this.#inBuffer = EMPTY;
    this.incoming = [];
    this.#collected = 0;
    try {
      this.#clearFifo();
    } finally {
      this.#updateReadable();
    }
  }
}

function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, not ${describe(value)}`);
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer (got ${value})`);
  }
  return value;
}

function describeTerminator(term: Terminator): string {
  if (typeof term === 'number') return `(${term} more bytes)`;
  if (typeof term === 'string') return JSON.stringify(term);
  if (term instanceof Uint8Array) return JSON.stringify(Buffer.from(term).toString('latin1'));
  return 'null';
}

// writable() reads only the fifo and `connected`, and every change of those is reported
// (push, closeWhenDone, the connected setter) or happens in the channel's own handlers;
// readable() reads the fifo's counts and the EOF and closed flags, and #updateReadable()
// reports each change of its answer: an idle AsyncChat costs the loop nothing (see
// hasBuiltInPredicates).
declareBuiltInPredicates(AsyncChat.prototype);
