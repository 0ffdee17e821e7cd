#!/usr/bin/env node
// asyncore-forward: the classic asyncore port forwarder as a tool.
//
//   asyncore-forward -r REMOTE_HOST [-l LOCAL_HOST] [-p LOCAL_PORT] [-P REMOTE_PORT]
//                    [--backend B] [--mode sync|thread] [--copy] [-v] [--trace]
//
// The classic recipe's long names work too (--local-ip, --local-port, --remote-ip,
// --remote-port), with its defaults: listen on 127.0.0.1:80, forward to port 80.
//
// A listening Dispatcher accepts; each connection gets a second Dispatcher connected to the
// remote end, and the two pipe to each other. On Linux the bytes go from socket to socket
// through a kernel pipe (splice(2), see SpliceOutbox) and never reach JavaScript; --copy, and
// other systems, recv() them into a buffer and send() them on (CopyOutbox).
//
// Half-closes are passed on (EOF from one side becomes shutdown(SHUT_WR) on the other once
// what is queued for it has been sent), and a side stops being read while its peer's outbox
// is full, so a slow reader slows the writer down instead of filling the forwarder's memory.
// A hang-up the kernel reports is read on to EOF: only a socket error closes both sides.

import { Buffer } from 'node:buffer';
import {
  AF_INET,
  AF_INET6,
  type Address,
  Dispatcher,
  IPPROTO_TCP,
  SHUT_WR,
  SOL_SOCKET,
  SO_ERROR,
  Socket,
  SocketError,
  SplicePipe,
  TCP_NODELAY,
} from '../index.js';
import { errnoName } from '../errors.js';
import { Cli, LOOP_FLAGS, LOOP_USAGE, describeError, formatAddress } from './common.js';

const DEFAULT_LOCAL_HOST = '127.0.0.1';
const DEFAULT_PORT = '80';

const USAGE = `usage: asyncore-forward -r REMOTE_HOST [-l LOCAL_HOST] [-p LOCAL_PORT] [-P REMOTE_PORT] [options]

  -l, --local-host HOST    address to listen on (default ${DEFAULT_LOCAL_HOST}); also --local-ip
  -p, --local-port PORT    port to listen on; 0 picks a free one (default ${DEFAULT_PORT})
  -r, --remote-host HOST   host to forward every connection to (required); also --remote-ip
  -P, --remote-port PORT   port to forward every connection to (default ${DEFAULT_PORT})
  --copy                   copy bytes through JavaScript (recv/send) even where splice(2)
                           can move them inside the kernel (Linux, the default there)
  -v, --verbose            print one line to stderr per connection
${LOOP_USAGE}

Each direction is read to EOF and passed on as a half-close (shutdown) once its bytes are sent;
a connection closes when both directions are done, or at once on a reset.`;

/** Copying: a side is not read while its peer has more than this queued for sending. */
const PEER_QUEUE_LIMIT = 256 * 1024;
/** Copying: bytes asked of the kernel per recv. */
const READ_CHUNK = 128 * 1024;
/** Splicing: the pipe each side gets for the bytes on their way to its socket. */
const PIPE_CAPACITY = 256 * 1024;
/** Reads per read event at most, so one busy connection cannot starve the others. */
const READS_PER_EVENT = 8;

// Every copying side receives into this one buffer: bytes the peer's socket takes at once
// are never copied in JS; only what it does not take is copied into the peer's queue.
const scratch = Buffer.allocUnsafe(READ_CHUNK);

// Explicitly typed, so TypeScript sees that cli.usageError() and cli.fail() never return.
const cli: Cli = new Cli('asyncore-forward', USAGE);

function isCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof SocketError && codes.includes(err.code);
}

function familyOf(host: string): number {
  return host.includes(':') ? AF_INET6 : AF_INET;
}

/**
 * The bytes on their way to one side's socket: read from its peer's socket, not yet taken
 * by this one. Two ways to hold them, one interface: copying through a JS buffer (anywhere),
 * or splicing through a kernel pipe (Linux; the bytes never reach JavaScript).
 */
interface Outbox {
  /** Bytes waiting for the socket. */
  readonly pending: number;
  /** Whether the peer may read more into the box now; false is the back-pressure. */
  readonly hasRoom: boolean;
  /**
   * Reads once from `from`, passes on to `to` what it takes at once (`to` is null while it
   * is still connecting) and keeps the rest. Returns the bytes read, 0 at EOF. Throws
   * SocketError: EAGAIN when nothing was waiting, EPIPE and friends when `to` is gone.
   */
  take(from: Socket, to: Socket | null): number;
  /** Sends what `to` takes now and keeps the rest. */
  flush(to: Socket): void;
  /** Drops what is waiting and releases what the box holds. Harmless twice. */
  discard(): void;
}

/** send() that reports a full socket buffer as 0 bytes taken. */
function sendSome(to: Socket, data: Buffer): number {
  try {
    return to.send(data);
  } catch (err) {
    if (isCode(err, 'EAGAIN', 'EWOULDBLOCK')) return 0;
    throw err;
  }
}

class CopyOutbox implements Outbox {
  #queue: Buffer[] = [];
  #pending = 0;

  get pending(): number {
    return this.#pending;
  }

  get hasRoom(): boolean {
    return this.#pending < PEER_QUEUE_LIMIT;
  }

  take(from: Socket, to: Socket | null): number {
    const got = from.recvInto(scratch, READ_CHUNK);
    const data = scratch.subarray(0, got);
    const sent = this.#pending === 0 && to !== null ? sendSome(to, data) : 0;
    if (sent < got) {
      // The scratch buffer is reused by the next read: keep a copy of what is left.
      this.#queue.push(Buffer.from(data.subarray(sent)));
      this.#pending += got - sent;
    }
    return got;
  }

  flush(to: Socket): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Buffer;
      const sent = sendSome(to, head);
      this.#pending -= sent;
      if (sent < head.length) {
        this.#queue[0] = head.subarray(sent);
        return;
      }
      this.#queue.shift();
    }
  }

  discard(): void {
    this.#queue = [];
    this.#pending = 0;
  }
}

class SpliceOutbox implements Outbox {
  readonly #pipe = new SplicePipe(PIPE_CAPACITY);

  get pending(): number {
    return this.#pipe.pending;
  }

  // Filled only when empty: the kernel counts a pipe's room in pages, not bytes, so EAGAIN
  // from a part-full pipe could mean "no room" as well as "nothing to read". From an empty
  // pipe it can only mean the latter. The sockets' own buffers do the buffering.
  get hasRoom(): boolean {
    return this.#pipe.pending === 0 && !this.#pipe.closed;
  }

  take(from: Socket, to: Socket | null): number {
    const got = this.#pipe.fill(from);
    if (got > 0 && to !== null) this.flush(to);
    return got;
  }

  flush(to: Socket): void {
    while (this.#pipe.pending > 0) {
      try {
        this.#pipe.drain(to);
      } catch (err) {
        if (isCode(err, 'EAGAIN', 'EWOULDBLOCK')) return;
        throw err;
      }
    }
  }

  discard(): void {
    this.#pipe.close();
  }
}

/**
 * One end of a forwarded connection: what it reads goes into its peer's outbox, and its
 * own outbox holds what its peer read until this socket takes it.
 */
class ForwardSide extends Dispatcher {
  peer: ForwardSide | null = null;
  readonly outbox: Outbox;
  /** This socket sent EOF: nothing more to read from it. */
  #inputEnded = false;
  /** The peer sent EOF: shut our sending side down once the outbox is empty. */
  #shutdownWhenFlushed = false;
  #outputShut = false;
  /** Out of the map after a hang-up, until the peer's outbox has room again. */
  #parked = false;

  constructor(
    private readonly label: string,
    splice: boolean,
    sock?: Socket,
  ) {
    super(sock ?? null);
    try {
      this.outbox = splice ? new SpliceOutbox() : new CopyOutbox();
    } catch (err) {
      super.close();
      throw err;
    }
  }

  // Asked every iteration: the answer changes when the *peer* sends or queues.
  override readable(): boolean {
    return !this.#inputEnded && this.peer !== null && this.peer.outbox.hasRoom;
  }

  override writable(): boolean {
    return this.connecting || this.outbox.pending > 0;
  }

  override handleConnect(): void {
    this.#sock().setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
  }

  override handleRead(): void {
    const sock = this.#sock();
    for (let reads = 0; reads < READS_PER_EVENT && this.readable(); reads++) {
      const peer = this.peer as ForwardSide;
      let got: number;
      try {
        got = peer.outbox.take(sock, peer.connected ? peer.#sock() : null);
      } catch (err) {
        if (isCode(err, 'EAGAIN', 'EWOULDBLOCK')) return;
        if (peer.#peerGone(err)) return;
        throw err;
      }
      if (got === 0) {
        this.#inputEnded = true;
        peer.endAfterFlush();
        this.#closeIfDone();
        return;
      }
    }
  }

  override handleWrite(): void {
    if (!this.connected) return;
    try {
      this.outbox.flush(this.#sock());
    } catch (err) {
      if (this.#peerGone(err)) return;
      throw err;
    }
    if (this.peer !== null && this.outbox.hasRoom) this.peer.#unpark();
    this.#shutdownIfFlushed();
  }

  /** The peer reached EOF: pass it on once everything it sent has gone out. */
  endAfterFlush(): void {
    this.#shutdownWhenFlushed = true;
    this.#shutdownIfFlushed();
  }

  /**
   * The loop reports a hang-up (POLLHUP/POLLERR), or a connect failed. A pending socket error
   * (a reset, a refused connect) closes both sides. A hang-up without one is not the end of
   * the stream: the kernel reports it once the peer's FIN has arrived and our sending side is
   * shut, while the bytes the peer sent before its FIN may still be waiting to be read. So
   * this side goes on reading to EOF (now, and in later read events), and the pair closes
   * when both directions are done.
   */
  override handleClose(): void {
    // This side already finished (see #closeIfDone) earlier in the loop's same turn.
    if (this.fileno() === null) return;
    const sock = this.socket;
    const pending = sock instanceof Socket && !sock.closed ? sock.getsockopt(SOL_SOCKET, SO_ERROR) : 0;
    if (pending !== 0 || !this.connected || this.peer === null) {
      if (pending !== 0) {
        process.stderr.write(`asyncore-forward: ${this.label}: ${errnoName(pending)}\n`);
      }
      this.closePair();
      return;
    }
    if (this.readable()) this.handleRead();
    else if (!this.#inputEnded && this.fileno() !== null) this.#park();
  }

  /**
   * Hung up while its peer's outbox is full: the kernel reports the hang-up on every wait,
   * whatever we ask, so the socket leaves the map until the outbox has room (#unpark), instead
   * of waking the loop for nothing until then.
   */
  #park(): void {
    this.#parked = true;
    this.delChannel();
  }

  #unpark(): void {
    if (!this.#parked) return;
    this.#parked = false;
    const sock = this.socket;
    if (sock instanceof Socket && !sock.closed) this.setSocket(sock);
  }

  override handleError(err: unknown): void {
    const reason = this.connecting ? `cannot connect to ${this.label}` : this.label;
    process.stderr.write(`asyncore-forward: ${reason}: ${describeError(err)}\n`);
    this.closePair();
  }

  // closeAll() and closePair() both end here: the outbox's pipe must not outlive the socket.
  override close(): void {
    this.outbox.discard();
    super.close();
  }

  closePair(): void {
    const peer = this.peer;
    this.peer = null;
    this.close();
    if (peer !== null) peer.closePair();
  }

  /** Sending to this socket failed because its far end is gone: close the pair. */
  #peerGone(err: unknown): boolean {
    if (!isCode(err, 'EPIPE', 'ECONNRESET', 'ENOTCONN')) return false;
    this.closePair();
    return true;
  }

  #shutdownIfFlushed(): void {
    if (!this.#shutdownWhenFlushed || this.#outputShut || this.outbox.pending > 0 || !this.connected) return;
    this.#outputShut = true;
    try {
      this.#sock().shutdown(SHUT_WR);
    } catch (err) {
      // The other end is already gone: nothing left to pass on.
      if (this.#peerGone(err)) return;
      throw err;
    }
    this.#closeIfDone();
  }

  /**
   * Both directions of this socket are over (EOF read, our side shut): the pair closes if
   * its peer is done too; otherwise this socket alone closes, so it is not polled (nor
   * reported hung up) while the peer still sends what this side read.
   */
  #closeIfDone(): void {
    const peer = this.peer;
    if (!this.#inputEnded || !this.#outputShut || peer === null) return;
    if (peer.#inputEnded && peer.#outputShut) this.closePair();
    else this.close();
  }

  #sock(): Socket {
    const sock = this.socket;
    if (sock instanceof Socket) return sock;
    throw new Error(`${this.label} has no socket`);
  }
}

/** The listening Dispatcher: one accepted connection, one new connection to the remote end. */
class Forwarder extends Dispatcher {
  readonly #remote: readonly [string, number];
  readonly #splice: boolean;
  readonly #verbose: boolean;

  constructor(
    local: readonly [string, number],
    remote: readonly [string, number],
    { splice, verbose }: { splice: boolean; verbose: boolean },
  ) {
    super();
    this.#remote = remote;
    this.#splice = splice;
    this.#verbose = verbose;
    this.createSocket(familyOf(local[0]));
    this.setReuseAddr();
    this.bind(local);
    this.listen(1024);
  }

  override handleAccepted(sock: Socket, addr: Address): void {
    const [host, port] = this.#remote;
    if (this.#verbose) {
      process.stderr.write(
        `Incoming connection from ${formatAddress(addr)}, forwarding to ${formatAddress([host, port])}\n`,
      );
    }
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    let client: ForwardSide;
    let upstream: ForwardSide;
    try {
      client = new ForwardSide(`client ${formatAddress(addr)}`, this.#splice, sock);
    } catch (err) {
      sock.close();
      throw err;
    }
    try {
      upstream = new ForwardSide(formatAddress([host, port]), this.#splice);
    } catch (err) {
      client.close();
      throw err;
    }
    client.peer = upstream;
    upstream.peer = client;
    try {
      upstream.createSocket(familyOf(host));
      upstream.connect([host, port]);
    } catch (err) {
      upstream.handleError(err);
    }
  }

  /** An accept() that failed (EMFILE, say) must not close the listener. */
  override handleError(err: unknown): void {
    process.stderr.write(`asyncore-forward: accept: ${describeError(err)}\n`);
  }
}

/** A host given under either of its two names (--local-host and --local-ip, say), if given. */
function eitherName(names: [string, string], values: [string | undefined, string | undefined]): string | undefined {
  const [a, b] = values;
  if (a !== undefined && b !== undefined && a !== b) cli.usageError(`${names[0]} and ${names[1]} disagree: ${a}, ${b}`);
  return a ?? b;
}

function main(): void {
  const parsed = cli.parse({
    options: {
      'local-host': { type: 'string', short: 'l' },
      'local-ip': { type: 'string' },
      'local-port': { type: 'string', short: 'p', default: DEFAULT_PORT },
      'remote-host': { type: 'string', short: 'r' },
      'remote-ip': { type: 'string' },
      'remote-port': { type: 'string', short: 'P', default: DEFAULT_PORT },
      copy: { type: 'boolean', default: false },
      ...LOOP_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === null) return;
  const { values } = parsed;
  const localHost =
    eitherName(['--local-host', '--local-ip'], [values['local-host'], values['local-ip']]) ?? DEFAULT_LOCAL_HOST;
  const remoteHost = eitherName(['--remote-host', '--remote-ip'], [values['remote-host'], values['remote-ip']]);
  if (remoteHost === undefined) cli.usageError('-r REMOTE_HOST (or --remote-ip) is required');
  const localPort = cli.port(values['local-port'], '-p LOCAL_PORT');
  const remotePort = cli.port(values['remote-port'], '-P REMOTE_PORT', { allowZero: false });
  const { mode, options } = cli.loopFlags(values);

  const splice = !values.copy && SplicePipe.supported;
  const remote = [remoteHost, remotePort] as const;
  const forwarder = cli.listen(
    localHost,
    localPort,
    () => new Forwarder([localHost, localPort], remote, { splice, verbose: values.verbose }),
  );
  cli.run(mode, options, { announce: Cli.listening(forwarder, options.backend, mode, splice ? 'splice' : 'copy') });
}

main();
