// Lesson 3: a port forwarder, two dispatchers per connection.
//
//   node dist/examples/port-forwarder.js --listen 9000 --to 127.0.0.1:8000
//
// Every connection accepted on --listen gets a second connection to --to, and the bytes of
// each side are sent to the other. It prints "listening on HOST:PORT" and stops on SIGINT or
// SIGTERM.
//
// What it teaches:
// - Pairs. Each Side is a DispatcherWithSend whose `peer` is the other Side: what one side
//   reads, the other sends. The loop does not know they belong together; it only ever sees
//   fds that are ready.
// - Back-pressure. If the target reads slower than the client writes, the bytes pile up in
//   the target side's outBuffer. So a side stops reading (readable() is false) while its
//   peer has more than HIGH_WATER bytes queued, and the kernel's TCP window slows the sender
//   down. readable() depends on the *other* dispatcher's state; because the class writes its
//   own readable(), the loop asks it again every iteration (README, "Overriding readable()
//   and writable()"), so reading resumes as soon as the peer has drained.
// - Half-close. A client may send a request, shut down its writing side and then wait for the
//   reply (shutdown(SHUT_WR), as `socat` or `nc -N` do). So EOF on one side is not the end:
//   the forwarder passes it on (after the queued bytes) with shutdown(SHUT_WR) on the other
//   side, and a pair closes only when both directions are finished.
// - Hang-ups. On poll and epoll the kernel may report POLLHUP while the peer's last bytes are
//   still unread. The loop keeps calling handleRead() until they are read (the package's one
//   deliberate difference from Python's asyncore, which closes at once and loses them), so here
//   handleClose() always means "this side is finished".
// - The loop runs on a native thread (loop()), so Node's own signal handlers can stop it.
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import {
  AF_INET,
  AF_INET6,
  type Address,
  Dispatcher,
  DispatcherWithSend,
  SHUT_WR,
  Socket,
  type SocketMap,
  closeAll,
  loop,
} from 'asyncore';

const READ_SIZE = 65536;
const HIGH_WATER = 1 << 20;

class Side extends DispatcherWithSend {
  peer: Side | null = null;
  /** The peer reached EOF: shut down our writing once outBuffer is empty. */
  #shutdownPending = false;
  /** We read EOF from this side. */
  eof = false;
  /** We shut down our writing side (the peer's EOF was passed on). */
  shutDown = false;

  override readable(): boolean {
    // Connected (or connecting, to learn the outcome), not at EOF, and the peer not flooded.
    return !this.eof && (this.peer === null || this.peer.outBuffer.length < HIGH_WATER);
  }

  override handleRead(): void {
    const data = this.recv(READ_SIZE);
    if (data.length > 0) this.peer?.send(data);
  }

  override handleWrite(): void {
    this.initiateSend();
    this.#finishShutdown();
  }

  /** recv() calls this at EOF (or a reset), the loop on a hang-up. */
  override handleClose(): void {
    if (this.peer === null || this.eof) {
      this.closePair();
      return;
    }
    this.eof = true;
    this.peer.passEof();
  }

  override handleError(err: unknown): void {
    this.logInfo(`${String(this)}: ${err instanceof Error ? err.message : String(err)}`, 'error');
    this.closePair();
  }

  /** The other side reached EOF: after what is queued, pass it on. */
  passEof(): void {
    this.#shutdownPending = true;
    this.#finishShutdown();
  }

  #finishShutdown(): void {
    if (!this.#shutdownPending || this.outBuffer.length > 0 || this.shutDown) return;
    this.shutDown = true;
    try {
      if (this.socket instanceof Socket) this.socket.shutdown(SHUT_WR);
    } catch {
      // The peer is already gone: the pair closes below.
    }
    // Both directions are finished when both sides have passed their EOF on.
    if (this.peer === null || this.peer.shutDown) this.closePair();
  }

  closePair(): void {
    const peer = this.peer;
    this.peer = null;
    this.close();
    if (peer !== null) {
      peer.peer = null;
      peer.close();
    }
  }
}

/** The connection to the target, made for one accepted client. */
class TargetSide extends Side {
  constructor(target: Address, map: SocketMap) {
    super(null, map);
    this.createSocket(Array.isArray(target) && (target[0] as string).includes(':') ? AF_INET6 : AF_INET);
    this.connect(target);
  }

  override handleConnect(): void {
    // Until now the client side's bytes waited in our outBuffer; they go out in handleWrite().
  }
}

export class PortForwarder extends Dispatcher {
  constructor(
    host: string,
    port: number,
    readonly target: Address,
    map?: SocketMap,
  ) {
    super(null, map);
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.setReuseAddr();
    this.bind([host, port]);
    this.listen(128);
  }

  override handleAccepted(sock: Socket): void {
    const client = new Side(sock, this._map);
    let target: TargetSide;
    try {
      target = new TargetSide(this.target, this._map);
    } catch (err) {
      client.handleError(err);
      return;
    }
    client.peer = target;
    target.peer = client;
  }

  get port(): number {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : null;
    return name === null || typeof name === 'string' ? 0 : name[1];
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      listen: { type: 'string', default: '9000' },
      to: { type: 'string' },
    },
  });
  const to = /^(.+):(\d+)$/.exec(values.to ?? '');
  if (to === null) {
    process.stderr.write('usage: port-forwarder --listen PORT --to HOST:PORT [--host 127.0.0.1]\n');
    process.exit(2);
  }
  const target: Address = [(to[1] as string).replace(/^\[|\]$/g, ''), Number(to[2])];
  const forwarder = new PortForwarder(values.host, Number(values.listen), target);
  process.stdout.write(`listening on ${values.host}:${forwarder.port}\n`);
  const stop = (): void => closeAll();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  void loop({ backend: 'auto' });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
