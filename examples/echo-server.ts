// Lesson 1: an echo server, the "hello world" of readiness polling.
//
//   node dist/examples/echo-server.js [--port 8080] [--backend select|poll|epoll] [--trace]
//
// Two classes, as in Python's asyncore documentation:
// - EchoServer owns the listening socket. The loop reports it readable when a connection is
//   waiting to be accepted; asyncore then calls handleAccepted() with the new socket.
// - EchoHandler owns one connection. Readable means bytes arrived (or the peer closed):
//   handleRead() takes them with recv() and hands them straight back with send().
//
// Nothing here blocks. recv() returns only what has arrived, and DispatcherWithSend's send()
// hands the kernel what it takes at once and keeps the rest in `outBuffer`; while that buffer
// is not empty the handler is writable(), so the loop watches the fd for writing too and
// handleWrite() sends more when the kernel has room. That is the whole trick of a readiness
// loop: never wait on one socket, ask the kernel which sockets can make progress right now.
//
// loopSync() is Python's asyncore.loop(): it runs on this thread until the map is empty, so
// this program runs until it is killed (Ctrl-C, SIGTERM). With --trace it prints, on stderr,
// what each iteration asked the kernel and what the kernel answered.
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import {
  type BackendName,
  Dispatcher,
  DispatcherWithSend,
  type IterationTrace,
  Socket,
  type SocketMap,
  loopSync,
} from 'asyncore';

/** How much one recv() may take. Any size works; a larger one means fewer system calls. */
const READ_SIZE = 8192;

/**
 * A guard the classic example lacks: a peer that sends but never reads would make outBuffer
 * grow without bound. Above this many queued bytes the handler stops reading (readable() is
 * false), so TCP's own flow control slows the peer down. Because EchoHandler writes its own
 * readable(), the loop asks it every iteration, as Python does (the package's built-in
 * predicates are asked only when their state changes; see README).
 */
const MAX_QUEUED = 1 << 20;

export class EchoHandler extends DispatcherWithSend {
  override readable(): boolean {
    return this.outBuffer.length < MAX_QUEUED;
  }

  override handleRead(): void {
    const data = this.recv(READ_SIZE);
    // An empty Buffer means end of file: recv() has already called handleClose().
    if (data.length > 0) this.send(data);
  }
}

export class EchoServer extends Dispatcher {
  constructor(host: string, port: number, map?: SocketMap) {
    super(null, map);
    this.createSocket();
    // Lets a restarted server bind the port while old connections are still in TIME_WAIT.
    this.setReuseAddr();
    this.bind([host, port]);
    this.listen(128);
  }

  override handleAccepted(sock: Socket): void {
    // The new dispatcher adds itself to the same map as the server: the loop now watches it.
    new EchoHandler(sock, this._map);
  }

  /** The port the kernel gave us (useful with port 0: "any free port"). */
  get port(): number {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : null;
    return name === null || typeof name === 'string' ? 0 : name[1];
  }
}

function printTrace(it: IterationTrace): void {
  const ready = it.ready.map((r) => `${r.fd}:${r.events}`).join(' ');
  process.stderr.write(
    `#${it.iteration} ${it.backend} read=[${it.read.join(',')}] write=[${it.write.join(',')}] ` +
      `ready=[${ready}] waited ${it.waitMs.toFixed(3)} ms, dispatched ${it.dispatchMs.toFixed(3)} ms\n`,
  );
}

function main(): void {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      backend: { type: 'string', default: 'select' },
      trace: { type: 'boolean', default: false },
    },
  });
  const server = new EchoServer(values.host, Number(values.port));
  process.stdout.write(`listening on ${values.host}:${server.port}\n`);
  loopSync({ backend: values.backend as BackendName, ...(values.trace ? { trace: printTrace } : {}) });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
