#!/usr/bin/env node
// asyncore-echo: the classic asyncore echo server (EchoHandler + EchoServer) as a tool.
//
//   asyncore-echo [--host 127.0.0.1] [--port 8080] [--backend auto] [--mode sync] [--trace] [-v] [--workers 1]
//
// With --workers N it runs N loops in N worker threads, each with its own listener on the port
// (SO_REUSEPORT), and prints each worker's connection count when it stops.
//
// It prints one line when it listens ("listening on HOST:PORT ...") and, with -v, one line
// to stderr per client ("Incoming connection from HOST:PORT"); it stops cleanly on
// SIGINT or SIGTERM. Each connection holds at most about 1 MiB of unsent echo (it stops
// reading a peer that does not read), and a peer that half-closes gets all of its echo
// before the server closes.

import {
  type Address,
  Dispatcher,
  DispatcherWithSend,
  IPPROTO_TCP,
  Socket,
  TCP_NODELAY,
  declareBuiltInPredicates,
  inWorkerPool,
} from '../index.js';
import {
  Cli,
  LOOP_FLAGS,
  LOOP_USAGE,
  boundPort,
  formatAddress,
  listenTcp,
  listeningAddress,
  traceToStderr,
} from './common.js';
import { type PoolData, WORKERS_FLAG, parseWorkers, poolWorker, runPoolWorker, servePool } from './pool.js';

const USAGE = `usage: asyncore-echo [options]

  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on; 0 picks a free one (default 8080)
  -v, --verbose     print "Incoming connection from HOST:PORT" to stderr for each client
  --workers N       run N loops in N worker threads, each with its own listener on the
                    port (SO_REUSEPORT) (default 1)
${LOOP_USAGE}`;

// Echo stops reading a connection whose reply queue passes PAUSE_ABOVE bytes (a peer that
// sends and never reads must not grow the server without bound) and reads again once the
// queue is back under RESUME_BELOW. The gap between the two keeps a peer that reads about
// as fast as it sends from flipping the interest (one epoll_ctl each way) on every read.
const PAUSE_ABOVE = 1 << 20;
const RESUME_BELOW = 256 << 10;
const READ_SIZE = 8192;

/** Set in a worker of --workers N: counts the bytes echoed (the share of the work per worker). */
let countEchoed: ((bytes: number) => void) | null = null;

/**
 * Python's EchoHandler, with two things DispatcherWithSend leaves to its user:
 * - flow control: it stops reading while its reply queue is above PAUSE_ABOVE;
 * - half-close: at EOF it still sends what is queued (the peer may have shut down only its
 *   sending side and be waiting for the rest), and closes once the queue is empty.
 */
class EchoHandler extends DispatcherWithSend {
  #paused = false;
  #closeWhenFlushed = false;

  override readable(): boolean {
    return !this.#paused && !this.#closeWhenFlushed;
  }

  override handleRead(): void {
    const data = this.recv(READ_SIZE);
    if (data.length > 0) {
      this.send(data);
      countEchoed?.(data.length);
    }
    this.#updateFlowControl();
  }

  override handleWrite(): void {
    this.initiateSend();
    if (this.#closeWhenFlushed && this.outBuffer.length === 0) this.close();
    else this.#updateFlowControl();
  }

  override handleClose(): void {
    // The first close event with a reply still queued is read as EOF: flush, then close.
    // If the peer is really gone, the next send fails (or poll reports HUP/ERR) and this
    // runs again, with the flag set, and closes at once.
    if (!this.#closeWhenFlushed && this.connected && this.outBuffer.length > 0) {
      this.#closeWhenFlushed = true;
      this.interestChanged();
      return;
    }
    this.close();
  }

  #updateFlowControl(): void {
    const queued = this.outBuffer.length;
    const paused = this.#paused ? queued >= RESUME_BELOW : queued >= PAUSE_ABOVE;
    if (paused === this.#paused) return;
    this.#paused = paused;
    // readable() answers differently now; the outBuffer setter only reports emptiness.
    this.interestChanged();
  }
}

// readable() depends only on #paused and #closeWhenFlushed, and every change of either calls
// interestChanged(): the loop need not ask an idle handler every iteration (O(active)).
declareBuiltInPredicates(EchoHandler.prototype);

class EchoServer extends Dispatcher {
  /** Called for every accepted connection (a pool worker counts them). */
  onAccepted: (() => void) | null = null;

  constructor(
    host: string,
    port: number,
    readonly verbose: boolean,
    reusePort = false,
  ) {
    super();
    listenTcp(this, host, port, reusePort);
  }

  override handleAccepted(sock: Socket, addr: Address): void {
    if (this.verbose) process.stderr.write(`Incoming connection from ${formatAddress(addr)}\n`);
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    new EchoHandler(sock);
    this.onAccepted?.();
  }
}

// Explicitly typed, so TypeScript sees that cli.usageError() and cli.fail() never return.
const cli: Cli = new Cli('asyncore-echo', USAGE);

interface EchoPoolData extends PoolData {
  trace: boolean;
  verbose: boolean;
}

/** One worker of --workers N: the same server on the shared port, with its own loop. */
function serveAsWorker(): void {
  const { ctx, port } = poolWorker<EchoPoolData>();
  const { host, backend, mode, trace, verbose } = ctx.data;
  const server = new EchoServer(host, port, verbose, true);
  server.onAccepted = (): void => ctx.count('connections');
  countEchoed = (bytes): void => ctx.count('bytes', bytes);
  ctx.ready({ port: boundPort(server), address: listeningAddress(server) });
  runPoolWorker(mode, { backend, timeout: 30, ...(trace ? { trace: traceToStderr(verbose) } : {}) });
}

function main(): void {
  if (inWorkerPool()) {
    serveAsWorker();
    return;
  }
  const parsed = cli.parse({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      ...WORKERS_FLAG,
      ...LOOP_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === null) return;
  const { values } = parsed;
  const port = cli.port(values.port, '--port');
  const { mode, options } = cli.loopFlags(values);
  const workers = parseWorkers(cli, values.workers);
  if (workers > 1) {
    const { backend } = options;
    const data: EchoPoolData = { host: values.host, port, backend, mode, trace: values.trace, verbose: values.verbose };
    servePool(cli, {
      module: new URL(import.meta.url),
      workers,
      data,
      counters: ['bytes'],
      announce: (address) =>
        `listening on ${address} (backend ${Cli.backendName(backend)}, mode ${mode}, workers ${workers})`,
    });
    return;
  }

  const server = cli.listen(values.host, port, () => new EchoServer(values.host, port, values.verbose));
  cli.run(mode, options, { announce: Cli.listening(server, options.backend, mode) });
}

main();
