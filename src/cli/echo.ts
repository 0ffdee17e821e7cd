#!/usr/bin/env node
// asyncore-echo: the classic asyncore echo server (EchoHandler + EchoServer) as a tool.
//
//   asyncore-echo [--host 127.0.0.1] [--port 8080] [--backend auto] [--mode sync] [--trace]
//
// It prints one line when it listens ("listening on HOST:PORT ...") and stops cleanly on
// SIGINT or SIGTERM.

import {
  AF_INET,
  AF_INET6,
  Dispatcher,
  DispatcherWithSend,
  IPPROTO_TCP,
  type IterationTrace,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLPRI,
  Socket,
  TCP_NODELAY,
} from '../index.js';
import { Cli } from './common.js';

const USAGE = `usage: asyncore-echo [options]

  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on; 0 picks a free one (default 8080)
  --backend NAME    select | poll | epoll | auto (default auto)
  --mode MODE       sync (loopSync on this thread) | thread (loop() on a native thread)
                    (default sync)
  --trace           print every loop iteration to stderr
  -h, --help        show this help`;

class EchoHandler extends DispatcherWithSend {
  override handleRead(): void {
    const data = this.recv(8192);
    if (data.length > 0) this.send(data);
  }

  override handleClose(): void {
    this.close();
  }
}

class EchoServer extends Dispatcher {
  constructor(host: string, port: number) {
    super();
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.setReuseAddr();
    this.bind([host, port]);
    this.listen(1024);
  }

  override handleAccepted(sock: Socket): void {
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    new EchoHandler(sock);
  }

  address(): string {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : '?';
    return typeof name === 'string' ? name : `${name[0]}:${name[1]}`;
  }
}

// Explicitly typed, so TypeScript sees that cli.usageError() and cli.fail() never return.
const cli: Cli = new Cli('asyncore-echo', USAGE);

function eventNames(events: number): string {
  const names: [number, string][] = [
    [POLLIN, 'IN'],
    [POLLPRI, 'PRI'],
    [POLLOUT, 'OUT'],
    [POLLERR, 'ERR'],
    [POLLHUP, 'HUP'],
    [POLLNVAL, 'NVAL'],
  ];
  return names
    .filter(([bit]) => events & bit)
    .map(([, name]) => name)
    .join('|');
}

function printTrace(it: IterationTrace): void {
  const ready = it.ready.map((r) => `${r.fd}:${eventNames(r.events)}`).join(' ');
  process.stderr.write(
    `#${it.iteration} ${it.backend} read=[${it.read.join(',')}] write=[${it.write.join(',')}] ` +
      `except=[${it.except.join(',')}] waited ${it.waitMs.toFixed(3)} ms -> ready ${ready || '-'} ` +
      `(dispatch ${it.dispatchMs.toFixed(3)} ms)\n`,
  );
}

function main(): void {
  const parsed = cli.parse({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      backend: { type: 'string', default: 'auto' },
      mode: { type: 'string', default: 'sync' },
      trace: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === null) return;
  const { values } = parsed;
  const port = cli.port(values.port, '--port');
  const backend = cli.backend(values.backend);
  const mode = cli.mode(values.mode);

  let server: EchoServer;
  try {
    server = new EchoServer(values.host, port);
  } catch (err) {
    cli.fail(`cannot listen on ${values.host}:${port}: ${(err as Error).message}`);
  }
  const listening = `listening on ${server.address()} (backend ${Cli.backendName(backend)}, mode ${mode})`;
  cli.run(mode, { backend, timeout: 30, ...(values.trace ? { trace: printTrace } : {}) }, { announce: listening });
}

main();
