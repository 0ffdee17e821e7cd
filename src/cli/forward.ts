#!/usr/bin/env node
// asyncore-forward: the classic asyncore port forwarder as a tool.
//
//   asyncore-forward -l LOCAL_HOST -p LOCAL_PORT -r REMOTE_HOST -P REMOTE_PORT
//                    [--backend B] [--mode sync|thread]
//
// A listening Dispatcher accepts; each connection gets a second Dispatcher connected to the
// remote end, and the two pipe to each other. Half-closes are passed on (EOF from one side
// becomes shutdown(SHUT_WR) on the other once what is queued for it has been sent), and a
// side stops being read while its peer has more than PEER_QUEUE_LIMIT bytes queued, so a
// slow reader slows the writer down instead of filling the forwarder's memory.

import {
  AF_INET,
  AF_INET6,
  type Address,
  Dispatcher,
  IPPROTO_TCP,
  SHUT_WR,
  Socket,
  SocketError,
  TCP_NODELAY,
} from '../index.js';
import { Cli } from './common.js';

const USAGE = `usage: asyncore-forward -l LOCAL_HOST -p LOCAL_PORT -r REMOTE_HOST -P REMOTE_PORT [options]

  -l, --local-host HOST    address to listen on
  -p, --local-port PORT    port to listen on; 0 picks a free one
  -r, --remote-host HOST   host to forward every connection to
  -P, --remote-port PORT   port to forward every connection to
  --backend NAME           select | poll | epoll | auto (default auto)
  --mode MODE              sync (loopSync on this thread) | thread (loop() on a native thread)
                           (default sync)
  -h, --help               show this help`;

/** A side is not read while its peer has more than this queued for sending. */
const PEER_QUEUE_LIMIT = 256 * 1024;
/** Bytes asked of the kernel per recv. */
const READ_CHUNK = 128 * 1024;
/** recv() calls per read event at most, so one busy connection cannot starve the others. */
const READS_PER_EVENT = 8;

// Every side receives into this one buffer: bytes the peer's socket takes at once are never
// copied in JS; only what it does not take is copied into the peer's queue.
const scratch = Buffer.allocUnsafe(READ_CHUNK);

// Explicitly typed, so TypeScript sees that cli.cli.usageError() and cli.fail() never return.
const cli: Cli = new Cli('asyncore-forward', USAGE);

function isCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof SocketError && codes.includes(err.code);
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function familyOf(host: string): number {
  return host.includes(':') ? AF_INET6 : AF_INET;
}

/**
 * One end of a forwarded connection: what it reads is sent to its peer, what its peer
 * reads is queued here until this socket takes it.
 */
class ForwardSide extends Dispatcher {
  peer: ForwardSide | null = null;
  /** Bytes read by the peer, waiting for this socket to take them. */
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  /** This socket sent EOF: nothing more to read from it. */
  #inputEnded = false;
  /** The peer sent EOF: shut our sending side down once the queue is empty. */
  #shutdownWhenFlushed = false;
  #outputShut = false;

  constructor(
    private readonly label: string,
    sock?: Socket,
  ) {
    super(sock ?? null);
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  // Asked every iteration: the answer changes when the *peer* sends or queues.
  override readable(): boolean {
    return !this.#inputEnded && this.peer !== null && this.peer.queuedBytes < PEER_QUEUE_LIMIT;
  }

  override writable(): boolean {
    return this.connecting || this.#queuedBytes > 0;
  }

  override handleConnect(): void {
    this.#sock().setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
  }

  override handleRead(): void {
    const sock = this.#sock();
    const peer = this.peer;
    for (let reads = 0; reads < READS_PER_EVENT && peer !== null && this.readable(); reads++) {
      let got: number;
      try {
        got = sock.recvInto(scratch, READ_CHUNK);
      } catch (err) {
        if (isCode(err, 'EAGAIN', 'EWOULDBLOCK')) return;
        throw err;
      }
      if (got === 0) {
        this.#inputEnded = true;
        peer.endAfterFlush();
        return;
      }
      peer.forward(scratch.subarray(0, got));
      if (got < READ_CHUNK) return;
    }
  }

  override handleWrite(): void {
    this.#flush();
  }

  /** Sends what this socket takes now and queues a copy of the rest. */
  forward(data: Buffer): void {
    let sent: number | null = 0;
    if (this.#queuedBytes === 0 && this.connected) sent = this.#send(data);
    if (sent === null) return;
    if (sent < data.length) {
      this.#queue.push(Buffer.from(data.subarray(sent)));
      this.#queuedBytes += data.length - sent;
    }
  }

  /** The peer reached EOF: pass it on once everything it sent has gone out. */
  endAfterFlush(): void {
    this.#shutdownWhenFlushed = true;
    this.#shutdownIfFlushed();
  }

  /** A reset, a refused connect or an error: both sides go. */
  override handleClose(): void {
    this.closePair();
  }

  override handleError(err: unknown): void {
    const reason = this.connecting ? `cannot connect to ${this.label}` : this.label;
    process.stderr.write(`asyncore-forward: ${reason}: ${describeError(err)}\n`);
    this.closePair();
  }

  closePair(): void {
    const peer = this.peer;
    this.peer = null;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.close();
    if (peer !== null) peer.closePair();
  }

  #flush(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Buffer;
      const sent = this.#send(head);
      if (sent === null) return;
      this.#queuedBytes -= sent;
      if (sent < head.length) {
        this.#queue[0] = head.subarray(sent);
        return;
      }
      this.#queue.shift();
    }
    this.#shutdownIfFlushed();
  }

  #shutdownIfFlushed(): void {
    if (!this.#shutdownWhenFlushed || this.#outputShut || this.#queuedBytes > 0 || !this.connected) return;
    this.#outputShut = true;
    try {
      this.#sock().shutdown(SHUT_WR);
    } catch (err) {
      // The other end is already gone: nothing left to pass on.
      if (isCode(err, 'ENOTCONN', 'ECONNRESET', 'EPIPE')) {
        this.closePair();
        return;
      }
      throw err;
    }
    this.#closeIfBothEnded();
  }

  /** Both directions have ended: the connection is over. */
  #closeIfBothEnded(): void {
    const peer = this.peer;
    if (peer !== null && this.#outputShut && peer.#outputShut) this.closePair();
  }

  /** Bytes the socket took (0 when it would block); null when its peer vanished and the pair closed. */
  #send(data: Buffer): number | null {
    try {
      return this.#sock().send(data);
    } catch (err) {
      if (isCode(err, 'EAGAIN', 'EWOULDBLOCK')) return 0;
      if (isCode(err, 'EPIPE', 'ECONNRESET', 'ENOTCONN')) {
        this.closePair();
        return null;
      }
      throw err;
    }
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

  constructor(local: readonly [string, number], remote: readonly [string, number]) {
    super();
    this.#remote = remote;
    this.createSocket(familyOf(local[0]));
    this.setReuseAddr();
    this.bind(local);
    this.listen(1024);
  }

  override handleAccepted(sock: Socket, addr: Address): void {
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    const client = new ForwardSide(`client ${formatAddress(addr)}`, sock);
    const [host, port] = this.#remote;
    const upstream = new ForwardSide(formatAddress([host, port]));
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

  /** HOST:PORT, unbracketed even for IPv6, as asyncore-echo prints it (startCli reads it). */
  address(): string {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : '?';
    return typeof name === 'string' ? name : `${name[0]}:${name[1]}`;
  }
}

function formatAddress(addr: Address): string {
  if (typeof addr === 'string') return addr;
  return addr[0].includes(':') ? `[${addr[0]}]:${addr[1]}` : `${addr[0]}:${addr[1]}`;
}

function main(): void {
  const parsed = cli.parse({
    options: {
      'local-host': { type: 'string', short: 'l' },
      'local-port': { type: 'string', short: 'p' },
      'remote-host': { type: 'string', short: 'r' },
      'remote-port': { type: 'string', short: 'P' },
      backend: { type: 'string', default: 'auto' },
      mode: { type: 'string', default: 'sync' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === null) return;
  const { values } = parsed;
  const localHost = values['local-host'];
  const remoteHost = values['remote-host'];
  if (localHost === undefined) cli.usageError('-l LOCAL_HOST is required');
  if (remoteHost === undefined) cli.usageError('-r REMOTE_HOST is required');
  const localPort = cli.port(values['local-port'], '-p LOCAL_PORT');
  const remotePort = cli.port(values['remote-port'], '-P REMOTE_PORT', { allowZero: false });
  const backend = cli.backend(values.backend);
  const mode = cli.mode(values.mode);

  let forwarder: Forwarder;
  try {
    forwarder = new Forwarder([localHost, localPort], [remoteHost, remotePort]);
  } catch (err) {
    cli.fail(`cannot listen on ${localHost}:${localPort}: ${describeError(err)}`);
  }
  const listening = `listening on ${forwarder.address()} (backend ${Cli.backendName(backend)}, mode ${mode})`;
  cli.run(mode, { backend, timeout: 30 }, { announce: listening });
}

main();
