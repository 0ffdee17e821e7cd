// Dispatcher and DispatcherWithSend: Python's asyncore.dispatcher and
// asyncore.dispatcher_with_send, method for method.
//
// The loop (loop.ts) asks readable()/writable() each iteration, waits, and calls the
// handle*Event() entry points below; they turn raw readiness into the events a subclass
// overrides: handleAccept on a listening socket, handleConnect on the first event of a
// connecting one, handleRead / handleWrite / handleExpt / handleClose otherwise.
import { Buffer } from 'node:buffer';
import type { Address } from './binding.js';
import { AF_INET, SOCK_STREAM, SOL_SOCKET, SO_ERROR, SO_REUSEADDR } from './constants.js';
import { EBADF, compactTraceback, errnoError, errnoName, isDisconnect, isWouldBlock } from './errors.js';
import type { FileWrapper } from './file.js';
import { Socket, toBytes } from './socket.js';
import { type SocketMap, existingStateOf, socketMap } from './socketmap.js';
import { type ScheduledCall, callLater } from './timers.js';

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
 * Marks the readable()/writable() of a class as built in: the loop asks them only after
 * interestChanged() or after the dispatcher handled an event, not every iteration, so an idle
 * dispatcher of the class costs nothing. A subclass that overrides them may declare itself
 * too, if it promises to call `this.interestChanged()` whenever their answer may change
 * (otherwise the loop would keep using a stale answer).
 *
 * ```ts
 * class Paused extends DispatcherWithSend {
 *   #paused = false;
 *   override readable(): boolean { return !this.#paused; }
 *   pause(paused: boolean): void { this.#paused = paused; this.interestChanged(); }
 * }
 * declareBuiltInPredicates(Paused.prototype);
 * ```
 */
export function declareBuiltInPredicates(prototype: Dispatcher): void {
  /* eslint-disable @typescript-eslint/unbound-method -- the methods are compared by identity, never called */
  builtInPredicates.add(prototype.readable);
  builtInPredicates.add(prototype.writable);
  /* eslint-enable @typescript-eslint/unbound-method */
}

/** Whether the loop may skip asking this dispatcher's predicates while it is idle. */
export function hasBuiltInPredicates(obj: Dispatcher): boolean {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- compared by identity, never called
  return builtInPredicates.has(obj.readable) && builtInPredicates.has(obj.writable);
}

/**
 * Python's `asyncore.dispatcher`: one socket under the loop, with the events a subclass overrides.
 *
 * The loop asks {@link Dispatcher.readable} and {@link Dispatcher.writable} before each wait and turns
 * what the kernel reports into events: {@link Dispatcher.handleAccept} on a listening socket,
 * {@link Dispatcher.handleConnect} when a `connect()` completes, then {@link Dispatcher.handleRead},
 * {@link Dispatcher.handleWrite}, {@link Dispatcher.handleExpt} and {@link Dispatcher.handleClose}.
 * What a handler throws goes to {@link Dispatcher.handleError}.
 *
 * ```ts
 * class EchoServer extends Dispatcher {
 *   constructor(host: string, port: number) {
 *     super();
 *     this.createSocket();
 *     this.setReuseAddr();
 *     this.bind([host, port]);
 *     this.listen(5);
 *   }
 *   override handleAccepted(sock: Socket): void {
 *     new EchoHandler(sock); // a DispatcherWithSend that echoes in handleRead()
 *   }
 * }
 * ```
 */
export class Dispatcher {
  /** When true, {@link DispatcherWithSend.send} logs what it sends (Python's `debug`). */
  debug = false;
  /**
   * Python's `closing` flag: the package never reads it; a subclass may use it to mark a channel that
   * is shutting down.
   */
  closing = false;
  /**
   * The address given to `bind()` or `connect()`, or the peer's for a connected socket; null before
   * either.
   */
  addr: Address | null = null;
  /**
   * The socket this dispatcher drives (a {@link FileWrapper} for a {@link FileDispatcher}); null before
   * {@link Dispatcher.createSocket} or {@link Dispatcher.setSocket}.
   */
  socket: Socket | FileWrapper | null = null;
  /**
   * Message types {@link Dispatcher.logInfo} drops (Python's `ignore_log_types`); by default
   * `'warning'`, which silences the 'unhandled ... event' messages of the default handlers.
   */
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
  /**
   * True while the socket has a peer: set by the constructor for a connected socket and when a
   * `connect()` completes; `close()` clears it.
   */
  get connected(): boolean {
    return this.#connected;
  }
  /**
   * Setting it tells the loop that the predicates may answer differently (see
   * {@link Dispatcher.interestChanged}).
   */
  set connected(value: boolean) {
    if (this.#connected === value) return;
    this.#connected = value;
    this.interestChanged();
  }

  /** True after {@link Dispatcher.listen}: read events then mean a connection is waiting. */
  get accepting(): boolean {
    return this.#accepting;
  }
  /** Setting it tells the loop that the predicates may answer differently. */
  set accepting(value: boolean) {
    if (this.#accepting === value) return;
    this.#accepting = value;
    this.interestChanged();
  }

  /**
   * True while a non-blocking {@link Dispatcher.connect} is under way; the next read or write event
   * completes it.
   */
  get connecting(): boolean {
    return this.#connecting;
  }
  /** Setting it tells the loop that the predicates may answer differently. */
  set connecting(value: boolean) {
    if (this.#connecting === value) return;
    this.#connecting = value;
    this.interestChanged();
  }

  /**
   * Python's `dispatcher(sock, map)`. With a socket (say, from `accept()`) the dispatcher makes it
   * non-blocking and registers itself in `map` (default: the global {@link socketMap}); `connected` is
   * true when the socket has a peer. Without one, call {@link Dispatcher.createSocket} or
   * {@link Dispatcher.setSocket} later.
   */
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

  /** The fd this dispatcher is registered under, or null before a socket is set and after `close()`. */
  fileno(): number | null {
    return this._fileno;
  }

  /**
   * Python's repr, e.g. `<EchoServer listening 127.0.0.1:8080 at fd 7>`; {@link Dispatcher.handleError}
   * logs it.
   */
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

  /**
   * Registers this dispatcher under its fd in `map` (default: its own map).
   * {@link Dispatcher.setSocket} calls it.
   */
  addChannel(map?: SocketMap): void {
    const target = map ?? this._map;
    if (this._fileno === null) return;
    target.set(this._fileno, this);
    this.interestChanged(target);
  }

  /**
   * Removes this dispatcher from `map` (default: its own map) and forgets its fd.
   * {@link Dispatcher.close} calls it.
   */
  delChannel(map?: SocketMap): void {
    const target = map ?? this._map;
    const fd = this._fileno;
    if (fd !== null && target.get(fd) === this) {
      target.delete(fd);
      existingStateOf(target)?.watcher?.forget(fd, this);
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
    existingStateOf(map)?.watcher?.interestChanged(this);
  }

  // --- Socket methods ------------------------------------------------------------------------

  /**
   * Python's `create_socket()`: creates a non-blocking socket and registers the dispatcher in its map.
   */
  createSocket(family: number = AF_INET, type: number = SOCK_STREAM): void {
    const sock = new Socket(family, type);
    sock.setBlocking(false);
    this.setSocket(sock);
  }

  /**
   * Python's `set_socket()`: adopts `sock` and registers the dispatcher under its fd in `map` (default:
   * its own map).
   */
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

  /** Starts listening and sets `accepting`: read events then call {@link Dispatcher.handleAccept}. */
  listen(backlog: number): void {
    this.accepting = true;
    this.#socket('listen').listen(backlog);
  }

  /** Binds the socket to `addr` (see {@link Socket.bind}) and remembers it in `addr`. */
  bind(addr: Address): void {
    this.addr = addr;
    this.#socket('bind').bind(addr);
  }

  /**
   * Starts a non-blocking connect. When it completes at once, {@link Dispatcher.handleConnect} runs
   * now; otherwise when the socket becomes writable (or readable). A failure other than 'in progress'
   * throws {@link SocketError} here; one the kernel finds later reaches {@link Dispatcher.handleError}
   * when the connect completes. A refused connection (`ECONNREFUSED`) may come either way.
   */
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
    if (sock === null) throw errnoError(-EBADF, 'send', 'on a dispatcher without a socket');
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
    if (sock === null) throw errnoError(-EBADF, 'recv', 'on a dispatcher without a socket');
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

  /**
   * Removes the dispatcher from its map and closes the socket; `connected`, `accepting` and
   * `connecting` become false. Closing twice is harmless.
   */
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
    throw errnoError(-EBADF, syscall, sock === null ? 'on a dispatcher without a socket' : 'on a file dispatcher');
  }

  // --- Logging -------------------------------------------------------------------------------

  /** Python's `log()`: writes `log: message` to stderr. */
  log(message: unknown): void {
    process.stderr.write(`log: ${String(message)}\n`);
  }

  /**
   * Python's `log_info()`: writes `type: message` to stdout unless `type` is in
   * {@link Dispatcher.ignoreLogTypes}.
   */
  logInfo(message: unknown, type = 'info'): void {
    if (!this.ignoreLogTypes.has(type)) process.stdout.write(`${type}: ${String(message)}\n`);
  }

  // --- Predicates, asked every iteration -----------------------------------------------------

  /**
   * Asked before each wait: should the loop watch this socket for reading? Default: always.
   *
   * Override it for flow control. As in Python, an overridden predicate is asked every iteration; the
   * package's own predicates are asked only when their answer may have changed, so idle dispatchers
   * cost nothing. If yours depends on state that changes outside your handlers, call
   * {@link Dispatcher.interestChanged} after changing it.
   */
  readable(): boolean {
    return true;
  }

  /**
   * Asked before each wait: should the loop watch this socket for writing? Default: always, so a
   * connected plain `Dispatcher` gets a write event every iteration, as in Python;
   * {@link DispatcherWithSend} asks only while it has data queued. See {@link Dispatcher.readable} on
   * overriding.
   */
  writable(): boolean {
    return true;
  }

  // --- Entry points the loop calls -----------------------------------------------------------

  /**
   * Entry point the loop calls when the socket is readable: on a listening socket
   * {@link Dispatcher.handleAccept}; on a connecting one it completes the connect first; then
   * {@link Dispatcher.handleRead}. Override the `handle*` events, not this.
   */
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

  /**
   * Completes a non-blocking connect: throws the error `SO_ERROR` reports (say, `ECONNREFUSED`), else
   * calls {@link Dispatcher.handleConnect} and sets `connected`.
   */
  handleConnectEvent(): void {
    const err = this.#connectError();
    if (err !== 0) throw errnoError(-err, 'connect');
    this.handleConnect();
    this.connected = true;
    this.connecting = false;
  }

  /**
   * Entry point for a writable socket: completes a pending connect, then calls
   * {@link Dispatcher.handleWrite}. Ignored on a listening socket.
   */
  handleWriteEvent(): void {
    // A listening socket is never polled for writing; pretend such an event did not happen.
    if (this.accepting) return;
    if (!this.connected && this.connecting) this.handleConnectEvent();
    this.handleWrite();
  }

  /**
   * Entry point for an exceptional condition: a pending socket error closes the channel
   * ({@link Dispatcher.handleClose}); anything else, such as out-of-band data, goes to
   * {@link Dispatcher.handleExpt}.
   */
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

  /**
   * Called with what a handler threw, except {@link ExitNow} (which leaves the loop), disconnect errors
   * (which call `handleClose()`) and `EAGAIN` (a spurious wake-up). Default: logs the error with a
   * compact traceback as type `'error'`, then calls {@link Dispatcher.handleClose}.
   */
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

  /** Out-of-band (urgent) data arrived. Default: logs a warning. */
  handleExpt(): void {
    this.logInfo('unhandled incoming priority event', 'warning');
  }

  /**
   * Data arrived; read it with {@link Dispatcher.recv}, which also notices EOF (empty Buffer, then
   * `handleClose()`). Default: logs a warning.
   */
  handleRead(): void {
    this.logInfo('unhandled read event', 'warning');
  }

  /** The socket can take more data. Default: logs a warning. */
  handleWrite(): void {
    this.logInfo('unhandled write event', 'warning');
  }

  /**
   * A {@link Dispatcher.connect} completed; `connected` becomes true right after. Default: logs a
   * warning.
   */
  handleConnect(): void {
    this.logInfo('unhandled connect event', 'warning');
  }

  /**
   * A connection is waiting on a listening socket. Default: {@link Dispatcher.accept} it and pass it to
   * {@link Dispatcher.handleAccepted}.
   */
  handleAccept(): void {
    const pair = this.accept();
    if (pair !== null) this.handleAccepted(pair[0], pair[1]);
  }

  /**
   * Called with each accepted connection and the peer's address; wrap `sock` in a dispatcher of your
   * own. Default: closes it and logs a warning.
   */
  handleAccepted(sock: Socket, addr: Address): void {
    sock.close();
    this.logInfo(`unhandled accepted event from ${String(addr)}`, 'warning');
  }

  /**
   * The peer closed, or the connection failed. Default: logs a warning and calls
   * {@link Dispatcher.close}.
   */
  handleClose(): void {
    this.logInfo('unhandled close event', 'warning');
    this.close();
  }
}

declareBuiltInPredicates(Dispatcher.prototype);

const EMPTY = Buffer.alloc(0);

/** Python's dispatcher_with_send: send() buffers what the socket does not take at once. */
export class DispatcherWithSend extends Dispatcher {
  // The queue is #store[#start, #end). Sending advances #start; queuing writes at #end, and only
  // a full store is copied, into one twice the size of what is queued. So queuing n bytes in
  // many small sends copies O(n) bytes, where Python's `out_buffer + data` copies the whole
  // queue on every send. Bytes are never written where an outBuffer view handed out earlier
  // can see them: writes go past #end only, and an emptied queue gets a fresh store.
  #store: Buffer = EMPTY;
  #start = 0;
  #end = 0;

  /** Bytes queued and not sent yet; writable() is true while it is not empty. */
  get outBuffer(): Buffer {
    // An empty queue needs no view of its own (handlers read outBuffer.length after each send).
    return this.#start === this.#end ? EMPTY : this.#store.subarray(this.#start, this.#end);
  }
  /** Replacing it tells the loop when `writable()` changes. */
  set outBuffer(value: Buffer) {
    const wasEmpty = this.#start === this.#end;
    this.#store = value;
    this.#start = 0;
    this.#end = value.length;
    if (wasEmpty !== (value.length === 0)) this.interestChanged();
  }

  /** Sends as much of outBuffer as the socket takes now (64 KiB at most per call). */
  initiateSend(): void {
    const sent = super.send(this.#store.subarray(this.#start, Math.min(this.#end, this.#start + 65536)));
    if (sent === 0 || this.#start === this.#end) return;
    this.#start += sent;
    if (this.#start === this.#end) this.outBuffer = EMPTY;
  }

  /** Sends more of `outBuffer`. */
  override handleWrite(): void {
    this.initiateSend();
  }

  /** True until connected (to see a connect complete) and while `outBuffer` holds data. */
  override writable(): boolean {
    return !this.connected || this.#start !== this.#end;
  }

  /** Queues data and sends what it can now; returns the number of bytes accepted. */
  override send(data: Uint8Array | string): number {
    if (this.debug) this.logInfo(`sending ${String(data)}`);
    const bytes = toBytes(data);
    if (this.#start === this.#end) {
      // Nothing queued: send straight from the caller's bytes and queue a copy of the rest
      // (not a view: the caller may reuse its buffer).
      const sent = super.send(bytes);
      if (sent < bytes.length) this.#enqueue(bytes.subarray(sent));
    } else {
      this.#enqueue(bytes);
      this.initiateSend();
    }
    return bytes.length;
  }

  /** Appends a copy of bytes to the queue. */
  #enqueue(bytes: Uint8Array): void {
    const wasEmpty = this.#start === this.#end;
    if (this.#end + bytes.length > this.#store.length) {
      const queued = this.#end - this.#start;
      const store = Buffer.allocUnsafe(Math.max(2 * (queued + bytes.length), 4096));
      this.#store.copy(store, 0, this.#start, this.#end);
      this.#store = store;
      this.#start = 0;
      this.#end = queued;
    }
    this.#store.set(bytes, this.#end);
    this.#end += bytes.length;
    if (wasEmpty) this.interestChanged();
  }
}

declareBuiltInPredicates(DispatcherWithSend.prototype);
