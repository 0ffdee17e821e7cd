// Dispatcher and DispatcherWithSend: Python's asyncore.dispatcher and
// asyncore.dispatcher_with_send, method for method.
//
// The loop (loop.ts) asks readable()/writable() each iteration, waits, and calls the
// handle*Event() entry points below; they turn raw readiness into the events a subclass
// overrides: handleAccept on a listening socket, handleConnect on the first event of a
// connecting one, handleRead / handleWrite / handleExpt / handleClose otherwise.
import type { Address } from './binding.js';
import { AF_INET, SOCK_STREAM, SOL_SOCKET, SO_ERROR, SO_REUSEADDR } from './constants.js';
import { compactTraceback, errnoError, errnoName, isDisconnect, isWouldBlock } from './errors.js';
import type { FileWrapper } from './file.js';
import { Socket, toBytes } from './socket.js';
import { type ScheduledCall, callLater } from './timers.js';
import { watcherOf } from './watchers.js';

/** fd -> dispatcher: what a loop polls. */
export type SocketMap = Map<number, Dispatcher>;

/** The map used when none is given, as Python's asyncore.socket_map. */
export const socketMap: SocketMap = new Map();

// connect_ex() results that mean "the connection is under way".
const CONNECT_PENDING: ReadonlySet<string> = new Set(['EINPROGRESS', 'EALREADY', 'EAGAIN', 'EWOULDBLOCK']);

// Predicates whose answers depend only on state this package tracks (connected, accepting,
// outBuffer, a producer fifo). A dispatcher whose readable() and writable() are both listed
// tells the loop when their answers may change (interestChanged), so the loop does not
// have to ask it every iteration: an idle one costs nothing. Any other predicate is asked
// every iteration, exactly as in Python.
const builtInPredicates = new Set<unknown>();

// accept() failures that mean "no fd or memory for one more connection right now". The
// connection stays queued, so the listener stays readable: polling it again at once would spin.
const ACCEPT_EXHAUSTED: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
const ACCEPT_RETRY_SECONDS = 0.1;

/**
 * Marks the readable()/writable() of a class as built in (see above): the loop asks them only
 * after interestChanged() or after the dispatcher handled an event, not every iteration.
 * A subclass that overrides them may declare itself too, if it promises to call
 * `this.interestChanged()` whenever their answer may change.
 */
export function declareBuiltInPredicates(prototype: Dispatcher): void {
  builtInPredicates.add(prototype.readable);
  builtInPredicates.add(prototype.writable);
}

/** Whether the loop may skip asking this dispatcher's predicates while it is idle. */
export function hasBuiltInPredicates(obj: Dispatcher): boolean {
  return builtInPredicates.has(obj.readable) && builtInPredicates.has(obj.writable);
}

export class Dispatcher {
  debug = false;
  closing = false;
  addr: Address | null = null;
  socket: Socket | FileWrapper | null = null;
  ignoreLogTypes: Set<string> = new Set(['warning']);

  /** The map this dispatcher lives in. */
  protected _map: SocketMap;
  /** The fd it is registered under, or null. */
  protected _fileno: number | null = null;
  #connected = false;
  #accepting = false;
  #connecting = false;
  #acceptRetry: ScheduledCall | null = null;

  // State the built-in predicates read: a change tells the loop to ask them again.
  get connected(): boolean {
    return this.#connected;
  }
  set connected(value: boolean) {
    if (this.#connected === value) return;
    this.#connected = value;
    this.interestChanged();
  }

  get accepting(): boolean {
    return this.#accepting;
  }
  set accepting(value: boolean) {
    if (this.#accepting === value) return;
    this.#accepting = value;
    this.interestChanged();
  }

  get connecting(): boolean {
    return this.#connecting;
  }
  set connecting(value: boolean) {
    if (this.#connecting === value) return;
    this.#connecting = value;
    this.interestChanged();
  }

  constructor(sock?: Socket | null, map?: SocketMap) {
    this._map = map ?? socketMap;
    if (sock) {
      sock.setBlocking(false);
      this.setSocket(sock, map);
      this.connected = true;
      try {
        this.addr = sock.getpeername();
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'ENOTCONN' || code === 'EINVAL') {
          // A socket that is not connected (yet): connect() or listen() comes later.
          this.connected = false;
        } else {
          this.delChannel(map);
          throw err;
        }
      }
    }
  }

  fileno(): number | null {
    return this._fileno;
  }

  toString(): string {
    const status = [this.constructor.name];
    if (this.accepting && this.addr !== null) status.push('listening');
    else if (this.connected) status.push('connected');
    if (this.addr !== null) {
      // Python prints host:port, and the repr of anything else (a UNIX path, '').
      status.push(typeof this.addr === 'string' ? `'${this.addr}'` : `${this.addr[0]}:${this.addr[1]}`);
    }
    return `<${status.join(' ')} at fd ${this._fileno ?? 'None'}>`;
  }

  // --- The map ---------------------------------------------------------------------------

  addChannel(map?: SocketMap): void {
    const target = map ?? this._map;
    if (this._fileno === null) return;
    target.set(this._fileno, this);
    this.interestChanged(target);
  }

  delChannel(map?: SocketMap): void {
    const target = map ?? this._map;
    const fd = this._fileno;
    if (fd !== null && target.get(fd) === this) {
      target.delete(fd);
      watcherOf(target)?.forget(fd, this);
    }
    this._fileno = null;
  }

  /**
   * Tells the loop polling the map that readable()/writable() may answer differently now.
   * The package calls it for its own state (connected, accepting, outBuffer, ...). Call it
   * from a subclass whose predicates depend on state that changes outside its handlers (a
   * Node timer, a promise): loop() on its native thread then re-asks at once instead of
   * after `timeout`.
   */
  interestChanged(map: SocketMap = this._map): void {
    // During construction the map is not assigned yet; addChannel() reports the channel.
    if (map !== undefined) watcherOf(map)?.interestChanged(this);
  }

  // --- Socket methods ------------------------------------------------------------------------

  createSocket(family: number = AF_INET, type: number = SOCK_STREAM): void {
    const sock = new Socket(family, type);
    sock.setBlocking(false);
    this.setSocket(sock);
  }

  setSocket(sock: Socket | FileWrapper, map?: SocketMap): void {
    this.socket = sock;
    this._fileno = sock.fileno();
    this.addChannel(map);
  }

  /** Allows the address to be reused at once after a restart. */
  setReuseAddr(): void {
    try {
      const sock = this.#socket('setsockopt');
      sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, sock.getsockopt(SOL_SOCKET, SO_REUSEADDR) | 1);
    } catch {
      // Python ignores a failure here too: reuse is an optimisation.
    }
  }

  listen(backlog: number): void {
    this.accepting = true;
    this.#socket('listen').listen(backlog);
  }

  bind(addr: Address): void {
    this.addr = addr;
    this.#socket('bind').bind(addr);
  }

  connect(address: Address): void {
    this.connected = false;
    this.connecting = true;
    const err = this.#socket('connect').connectEx(address);
    const code = errnoName(err);
    if (CONNECT_PENDING.has(code)) {
      this.addr = address;
      return;
    }
    if (err === 0 || code === 'EISCONN') {
      this.addr = address;
      this.handleConnectEvent();
      return;
    }
    throw errnoError(-err, 'connect');
  }

  /** The next connection, or null when none is waiting (or it vanished before accept). */
  accept(): [Socket, Address] | null {
    try {
      return this.#socket('accept').accept();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'ECONNABORTED') return null;
      if (typeof code === 'string' && ACCEPT_EXHAUSTED.has(code)) this.#pauseAccepting();
      throw err;
    }
  }

  /** Bytes sent: 0 when it would block, or after a disconnect (then handleClose() ran). */
  send(data: Uint8Array | string): number {
    const sock = this.socket;
    if (sock === null) throw errnoError(-9, 'send', 'on a dispatcher without a socket');
    try {
      return sock.send(data);
    } catch (err) {
      if (isWouldBlock(err)) return 0;
      if (isDisconnect(err)) {
        this.handleClose();
        return 0;
      }
      throw err;
    }
  }

  /** Up to n bytes; an empty Buffer at EOF or after a disconnect (then handleClose() ran). */
  recv(n: number): Buffer {
    const sock = this.socket;
    if (sock === null) throw errnoError(-9, 'recv', 'on a dispatcher without a socket');
    try {
      const data = sock.recv(n);
      if (data.length === 0 && n > 0) this.handleClose();
      return data;
    } catch (err) {
      if (isDisconnect(err)) {
        this.handleClose();
        return Buffer.alloc(0);
      }
      throw err;
    }
  }

  /**
   * True for a moment after accept() ran out of fds or memory: the loop leaves the listener
   * unpolled for reading meanwhile (whatever readable() says), instead of spinning on a
   * connection it cannot take. libuv and nginx back off the same way.
   */
  get acceptPaused(): boolean {
    return this.#acceptRetry !== null;
  }

  #pauseAccepting(): void {
    if (this.#acceptRetry !== null) return;
    this.#acceptRetry = callLater(
      ACCEPT_RETRY_SECONDS,
      () => {
        this.#acceptRetry = null;
        this.interestChanged();
      },
      this._map,
    );
    this.interestChanged();
  }

  close(): void {
    this.#acceptRetry?.cancel();
    this.#acceptRetry = null;
    this.connected = false;
    this.accepting = false;
    this.connecting = false;
    this.delChannel();
    const sock = this.socket;
    if (sock !== null) {
      try {
        sock.close();
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== 'ENOTCONN' && code !== 'EBADF') throw err;
      }
    }
  }

  #socket(syscall: string): Socket {
    const sock = this.socket;
    if (sock instanceof Socket) return sock;
    throw errnoError(-9, syscall, sock === null ? 'on a dispatcher without a socket' : 'on a file dispatcher');
  }

  // --- Logging -------------------------------------------------------------------------------

  log(message: unknown): void {
    process.stderr.write(`log: ${String(message)}\n`);
  }

  logInfo(message: unknown, type = 'info'): void {
    if (!this.ignoreLogTypes.has(type)) process.stdout.write(`${type}: ${String(message)}\n`);
  }

  // --- Predicates, asked every iteration -----------------------------------------------------

  readable(): boolean {
    return true;
  }

  writable(): boolean {
    return true;
  }

  // --- Entry points the loop calls -----------------------------------------------------------

  handleReadEvent(): void {
    if (this.accepting) {
      // Listening sockets never "connect": readability means a connection is waiting.
      this.handleAccept();
    } else if (!this.connected) {
      if (this.connecting) this.handleConnectEvent();
      this.handleRead();
    } else {
      this.handleRead();
    }
  }

  handleConnectEvent(): void {
    const err = this.#connectError();
    if (err !== 0) throw errnoError(-err, 'connect');
    this.handleConnect();
    this.connected = true;
    this.connecting = false;
  }

  handleWriteEvent(): void {
    // A listening socket is never polled for writing; pretend such an event did not happen.
    if (this.accepting) return;
    if (!this.connected && this.connecting) this.handleConnectEvent();
    this.handleWrite();
  }

  handleExptEvent(): void {
    // select() and POLLPRI report errors and out-of-band data alike: tell them apart.
    if (this.#connectError() !== 0) this.handleClose();
    else this.handleExpt();
  }

  #connectError(): number {
    const sock = this.socket;
    return sock === null ? 0 : sock.getsockopt(SOL_SOCKET, SO_ERROR);
  }

  // --- Events to override ----------------------------------------------------------------

  handleError(err: unknown): void {
    const { info } = compactTraceback(err);
    let self: string;
    try {
      self = this.toString();
    } catch {
      self = `<toString() failed for ${this.constructor.name}>`;
    }
    const type = err instanceof Error ? err.name : typeof err;
    const value = err instanceof Error ? err.message : String(err);
    this.logInfo(`uncaptured exception, closing channel ${self} (${type}:${value} ${info})`, 'error');
    this.handleClose();
  }

  handleExpt(): void {
    this.logInfo('unhandled incoming priority event', 'warning');
  }

  handleRead(): void {
    this.logInfo('unhandled read event', 'warning');
  }

  handleWrite(): void {
    this.logInfo('unhandled write event', 'warning');
  }

  handleConnect(): void {
    this.logInfo('unhandled connect event', 'warning');
  }

  handleAccept(): void {
    const pair = this.accept();
    if (pair !== null) this.handleAccepted(pair[0], pair[1]);
  }

  handleAccepted(sock: Socket, addr: Address): void {
    sock.close();
    this.logInfo(`unhandled accepted event from ${String(addr)}`, 'warning');
  }

  handleClose(): void {
    this.logInfo('unhandled close event', 'warning');
    this.close();
  }
}

declareBuiltInPredicates(Dispatcher.prototype);

const EMPTY = Buffer.alloc(0);

/** Python's dispatcher_with_send: send() buffers what the socket does not take at once. */
export class DispatcherWithSend extends Dispatcher {
  #outBuffer: Buffer = EMPTY;

  /** Bytes queued and not sent yet; writable() is true while it is not empty. */
  get outBuffer(): Buffer {
    return this.#outBuffer;
  }
  set outBuffer(value: Buffer) {
    const wasEmpty = this.#outBuffer.length === 0;
    this.#outBuffer = value;
    if (wasEmpty !== (value.length === 0)) this.interestChanged();
  }

  /** Sends as much of outBuffer as the socket takes now (64 KiB at most per call). */
  initiateSend(): void {
    const sent = super.send(this.outBuffer.subarray(0, 65536));
    this.outBuffer = this.outBuffer.subarray(sent);
  }

  override handleWrite(): void {
    this.initiateSend();
  }

  override writable(): boolean {
    return !this.connected || this.outBuffer.length > 0;
  }

  /** Queues data and sends what it can now; returns the number of bytes accepted. */
  override send(data: Uint8Array | string): number {
    if (this.debug) this.logInfo(`sending ${String(data)}`);
    const bytes = toBytes(data);
    if (this.#outBuffer.length === 0) {
      // Nothing queued: send straight from the caller's bytes and queue a copy of the rest
      // (not a view: the caller may reuse its buffer).
      const sent = super.send(bytes);
      if (sent < bytes.length) this.outBuffer = Buffer.from(bytes.subarray(sent));
    } else {
      this.outBuffer = Buffer.concat([this.#outBuffer, bytes]);
      this.initiateSend();
    }
    return bytes.length;
  }
}

declareBuiltInPredicates(DispatcherWithSend.prototype);
